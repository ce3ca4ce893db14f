"""`python -m fer_ablation.predict`: the command is :mod:`fer_ablation.cli.predict`."""

from fer_ablation.cli.predict import main

if __name__ == "__main__":
    main()
