"""gunicorn settings for examples/gunicorn_app.py: four workers, dead workers' gauges forgotten."""

import obskit.prometheus

workers = 4
bind = "127.0.0.1:8000"
# Runs in the gunicorn master whenever a worker exits: removes that worker's live-gauge files
# from the multi-process directory (its counters and histograms stay, so sums never go down).
child_exit = obskit.prometheus.child_exit
