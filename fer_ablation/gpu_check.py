"""`python -m fer_ablation.gpu_check`: the command is :mod:`fer_ablation.cli.gpu_check`."""

from fer_ablation.cli.gpu_check import main

if __name__ == "__main__":
    main()
