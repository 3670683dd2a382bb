"""The `qa` command line: parses arguments, calls the library (run, results, web), prints, exits."""
