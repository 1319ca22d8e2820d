import click

@click.group()
def main():
    """Prepare PRN training data."""
