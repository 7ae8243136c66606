"""Model-agnostic gRPC server scaffolding shared by the model servers (qwen_edit, moondream, ...).

What it gives a server:
  - `settings.ServerSettings` + `settings.load_settings`: typed, validated settings on pydantic-settings
    (defaults < file < env < flags), a bad value refused at start-up naming the setting;
  - `server.ModelServer`: a grpc.aio server with 64 MiB message limits, the standard health service
    (NOT_SERVING until the model is loaded, SERVING after, NOT_SERVING while draining or while a
    dependency is away), reflection, Prometheus metrics on their own port, a graceful SIGTERM drain, and
    a connection age so that clients re-resolve DNS and reach replicas added later;
  - `work_queue.WorkQueue` (as `ModelServer.work`): one generation at a time per device, a bounded
    queue, RESOURCE_EXHAUSTED beyond it;
  - `cancellation.CancelToken` (from `server.token_for(context)`): the caller's deadline and
    cancellation, checked by blocking model code between steps;
  - `errors`: typed domain errors (`InvalidArgument(field, problem)`, `Unavailable`, ...), mapped to gRPC
    status codes in one place (`interceptor.ServiceInterceptor`, which also logs one JSON line per call
    with its request id and records request metrics);
  - `logs`: JSON-line logging with the request id;
  - `images`: encoded images in and out (PNG/JPEG/WebP), errors naming the request field.

Starting server processes for tests, benchmarks and local stacks is `stack.process`'s job, one layer up.

Draining: SIGTERM (or `request_stop()`) turns health NOT_SERVING, refuses new model calls with UNAVAILABLE,
waits up to `drain_grace_s` for the calls in flight, then ends what is left (health watches) and returns.

How a server uses it (see `servers/qwen_edit/__main__.py`):

    config = load_settings(MySettings, sys.argv[1:])   # MySettings(ServerSettings), env_prefix="MY_"
    configure_logging(config.log_level)
    server = ModelServer("my_model", config)
    servicer = MyServicer(server)           # calls server.require_ready(), raises domain errors,
    server.add_service(                     # runs model code via `await server.work.run(fn, token_for(ctx))`
        "inpaint.v1.MyService", lambda s: my_pb2_grpc.add_MyServiceServicer_to_server(servicer, s))
    run_server(server, load=servicer.load)  # blocks until SIGTERM has drained the server

Nothing here imports a model library; the adapters import nothing from here but `errors` and `cancellation`.
"""
