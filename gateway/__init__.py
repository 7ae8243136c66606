"""The HTTP/JSON gateway of the public API and the web console it serves.

`routes.py` maps each RPC of inpaint.v1.InpaintService and OperationsService to an HTTP route (types from
the protos' descriptors); `app.py` forwards the calls to the orchestrator's gRPC port; `errors.py` turns
statuses into HTTP errors with the google.rpc details; `openapi.py` writes docs/openapi.json; `static/`
is the console. Run it with `python -m gateway --orchestrator 127.0.0.1:50050` (`make up` starts it).
"""
