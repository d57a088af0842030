"""Scoring: ranking metrics, first-stage search and score formulas shared by training and evaluation."""
