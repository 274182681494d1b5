"""Parts of the serving benchmark (`ops/bench/serve_bench.py`): the HTTP load client, the load loops,
the systems under test (this project, NVIDIA Dynamo's frontend + mocker, a trivial server) and the
tables."""
