"""The endpoints, one module per group: compute (the operations and validate), linearize (handles
and their products), trace (the graph with values and adjoints), catalogue (GET /v1/ops), health
(liveness, readiness, metrics), docs (Swagger UI and ReDoc, served locally), playground (the page
at /)."""
