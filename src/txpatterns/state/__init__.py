"""PostgreSQL state: migrations, the embedded server, and the namespace's state store."""
