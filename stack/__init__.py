"""Process supervision for local stacks: start the services as processes on 127.0.0.1, wait on their
health checks, stop exactly them. Used by `make up`/`make down`, the CLI, the demo, benchmarks and tests;
nothing in the services imports it.
"""
