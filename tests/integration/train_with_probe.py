"""``python -m tests.integration.train_with_probe``: lightdet's training entry point with this
package's probe callback allowed as a target, the way a user allows their own modules (in
code, never from a config)."""

from lightdet.guard import allow_targets

allow_targets("tests.integration.probe")

from lightdet.train import main  # noqa: E402

if __name__ == "__main__":
    main()
