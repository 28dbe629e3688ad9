"""deepspeed.launcher.runner: the environment file's name (zerorun's launcher reads it too)."""

DEEPSPEED_ENVIRONMENT_NAME = ".deepspeed_env"
