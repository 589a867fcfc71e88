"""Crafted data files for the tests that check no data file can run code."""


class RunsACommand:
    """Pickles as a call of ``os.system("touch MARKER")``, as an attack would."""

    def __init__(self, marker):
        self.marker = marker

    def __reduce__(self):
        import os

        return (os.system, (f"touch {self.marker}",))


def model_file_running_a_command(path, marker):
    """Saves a model whose Lambda layer runs ``touch MARKER`` when it is built.

    Keras stores the ``lambda`` as bytecode; loading the file rebuilds the
    model and so calls it.
    """
    import tensorflow as tf

    command = f"touch {marker}"
    inputs = tf.keras.Input((4,))
    hidden = tf.keras.layers.Lambda(lambda t: (__import__("os").system(command), t)[1])(
        inputs
    )
    model = tf.keras.Model(inputs, tf.keras.layers.Dense(2)(hidden))
    model.save(path)


def keras_file_naming_a_module(path, module):
    """Saves a ``.keras`` model whose config names ``module`` for its class.

    Keras imports the module a ``.keras`` config names for the model's class
    (``Planted``), running the module's code.
    """
    import json
    import zipfile

    import tensorflow as tf

    model = tf.keras.Sequential([tf.keras.Input((4,)), tf.keras.layers.Dense(2)])
    model.save(path)
    with zipfile.ZipFile(path) as archive:
        files = {name: archive.read(name) for name in archive.namelist()}
    config = json.loads(files["config.json"])
    config["module"], config["class_name"] = module, "Planted"
    files["config.json"] = json.dumps(config).encode()
    with zipfile.ZipFile(path, "w") as archive:
        for name, data in files.items():
            archive.writestr(name, data)
