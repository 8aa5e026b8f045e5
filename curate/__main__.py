if __name__ == "__main__":  # not when a worker pool's fork server imports this as __mp_main__
    from curate.cli import main

    main()
