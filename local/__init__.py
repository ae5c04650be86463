"""The local stack: embedded moto server, mock upstream, HTTP server, scheduler (never deployed)."""
