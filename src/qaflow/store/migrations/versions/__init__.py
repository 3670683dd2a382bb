"""One module per schema revision; SCHEMA_REVISION in qaflow.store.engine names the head."""
