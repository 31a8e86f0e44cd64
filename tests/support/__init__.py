"""The one copy of each helper more than one test folder needs: problem checks
(`problems`), users and their books (`users`), generations started from SQL
(`generations`), stub HTTP servers on a thread (`servers`), polling (`waiting`), row counts
(`rows`), log capture (`logs`), forged tokens (`tokens`) and MP4 files (`mp4`).

A helper that only one folder (or a folder and the one that borrows its stack) uses stays
in that folder's `support.py` or conftest. Recorded Lambda events are in tests/events."""
