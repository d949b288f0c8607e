"""The fault suite (a package, so its conftest and helpers never shadow the ones in tests/)."""
