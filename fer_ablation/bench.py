"""`python -m fer_ablation.bench`: the command is :mod:`fer_ablation.cli.bench`."""

from fer_ablation.cli.bench import main

if __name__ == "__main__":
    main()
