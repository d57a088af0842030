"""Runs and jobs: run records and events, the background job queue, and process liveness."""
