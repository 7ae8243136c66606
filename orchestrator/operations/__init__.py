"""The durable-execution layer: inpainting tasks as long-running operations on DBOS.

    engine = OperationsEngine(config.operations, runner, port=config.port)
    await engine.start()                       # DBOS launched on this event loop; heartbeat, recovery, retention
    operation = await engine.submit(request)   # at once; the task runs on any replica's queue slot
    async for event in engine.watch(name): ...

`engine.py` holds the workflow (the request id is its id), the queue and the replica's housekeeping;
`blobs.py` the image store (the database holds references); `tables.py` the few tables of our own
(progress events, replica heartbeats); `runner.py` what one task runs (the pipeline); `status.py`
errors as google.rpc details. The public contract is `inpaint.v1.OperationsService`.
"""
