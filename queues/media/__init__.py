"""What a media reference may be: the limits, allowlists and URL rules (`MediaConfig`), the checks
the front door runs on every reference before accepting a request (`validate`), the SSRF host
policy, data: and file:// URL handling, and the media `ClientError`s (`errors`). Shared by the
front door and the workers that fetch and decode media (`workers.media`).
"""
