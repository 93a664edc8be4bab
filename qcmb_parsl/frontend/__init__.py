"""What people and campaign scripts touch: the command line, campaigns, result files, tables and pictures."""
