"""`python -m fer_ablation.export`: the command is :mod:`fer_ablation.cli.export`."""

from fer_ablation.cli.export import main

if __name__ == "__main__":
    main()
