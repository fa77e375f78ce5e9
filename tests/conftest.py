"""Shared pytest configuration: the fixture plugins of the test suite."""

pytest_plugins = ["fix_s3", "fix_http", "fix_pg", "fix_spark", "fix_spark_cluster"]
