"""Everything that crosses a process boundary.

Messages, stream keys, the job runtime, the token channel and tensor transfer.
"""
