"""The endpoints, one module per group: compute (the operations and validate), linearize (handles
and their products), catalogue (GET /v1/ops), health (liveness, readiness, metrics), docs (Swagger
UI and ReDoc, served locally)."""
