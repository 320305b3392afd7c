"""`python -m bench`: run the workloads and print the table."""

from bench.runner import main

if __name__ == "__main__":
    raise SystemExit(main())
