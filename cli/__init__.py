"""Entry points for people: `python -m cli.run` (tasks from the command line), `python -m cli.demo`
(`make demo`), `python -m cli.face_demo` (`make face-demo`). They drive the library; it never imports them.
"""
