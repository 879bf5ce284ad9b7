print("post-gen stub {{ cookiecutter.slug }}")
