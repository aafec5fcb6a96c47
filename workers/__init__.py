"""RQ jobs and the worker entry. Jobs take ids only and re-load rows inside the job."""
