"""Publishing to S3-compatible object storage: bucket (the only user of boto3), sync (one
publication: what changed goes up, what is gone comes down), mirror (serve's background
publisher)."""
