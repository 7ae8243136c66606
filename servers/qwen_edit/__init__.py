"""The Qwen-Image-Edit server: `adapter` (diffusers, no gRPC), `servicer` (gRPC <-> adapter), `__main__` (serve),
`config` (typed settings), `standin` (a tiny random-weight pipeline for tests, built offline)."""
