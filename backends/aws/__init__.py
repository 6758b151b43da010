"""Amazon Web Services: the SageMaker training backend and what it needs (credentials, CloudWatch logs).

Everything that knows AWS lives in this package; boto3 is imported only inside it, on first use."""
