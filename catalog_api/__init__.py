"""catalog_api: the read path (list, view, search events, seat lists) and admin catalog writes."""
