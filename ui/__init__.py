"""The studio's UI side: what pages share (connection and project pickers, the job panel, the base picker) and
the display-only figures. Only pages and app.py import it; core never does."""
