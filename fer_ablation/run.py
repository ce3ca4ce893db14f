"""`python -m fer_ablation.run`: the command is :mod:`fer_ablation.cli.run`."""

from fer_ablation.cli.run import main

if __name__ == "__main__":
    main()
