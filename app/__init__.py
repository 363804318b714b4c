"""gradserve's HTTP service: FastAPI in front, a pool of worker processes running the engine behind.

Kept free of imports so that a spawned worker process, which imports `app.worker`, does not
load the web framework.
"""
