"""Media ingestion: fetch, validate, decode and cache images, video and audio."""
