"""`validate`: the dataset checked once, before any work (the checks: shared/contract/validate.py)."""
from invoke import task

from pipeline import context


def validate_stage(ctx):
    """train.csv's names and labels, duplicates, every train and test image decodable; all
    problems reported at once (a ContractError naming file and row)."""
    from shared.contract.validate import check_dataset

    counts = check_dataset(ctx.paths["dataset"])
    print("[validate] %s: %d train images of %d identities, %d test images" % (
        ctx.paths["dataset"], counts["train"], counts["identities"], counts["test"]))


@task(help={"workspace": "workspace folder"})
def validate(c, workspace=None):
    """Check the dataset (train.csv names and labels, every image) before any work."""
    validate_stage(context.from_task(c, workspace, lock=False))
