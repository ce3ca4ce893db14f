"""`python -m fer_ablation.evaluate`: the command is :mod:`fer_ablation.cli.evaluate`."""

from fer_ablation.cli.evaluate import main

if __name__ == "__main__":
    main()
