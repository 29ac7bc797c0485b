"""The Python ctypes binding (bindings/python/sdrt.py) from Python.

Usage: python3 tests/python/test_binding.py MODEL_DIR   (SDRT_LIBRARY: the libsdrt to use)
"""
import ctypes
import os
import re
import sys
import tempfile
import time
import unittest

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
sys.path.insert(0, os.path.join(ROOT, "bindings", "python"))
import sdrt  # noqa: E402

MODEL = None


def small(**overrides):
    options = dict(prompt="a red circle on a blue background", width=64, height=64, steps=3, guidance_scale=7.5,
                   seed=7, scheduler="euler")
    options.update(overrides)
    return options


class BindingTest(unittest.TestCase):
    @classmethod
    def setUpClass(cls):
        cls.pipeline = sdrt.Pipeline(MODEL)

    @classmethod
    def tearDownClass(cls):
        cls.pipeline.close()

    def test_constants_equal_the_header(self):
        with open(os.path.join(ROOT, "include", "sdrt.h")) as header:
            defines = dict(re.findall(r"^#define SDRT_(\w+) (\w+)$", header.read(), re.M))
        names = [n for n in dir(sdrt) if re.fullmatch(r"[A-Z][A-Z0-9_]+", n)]
        for name in names:
            value = defines[name]
            expected = 0xFFFFFFFF if value == "UINT32_MAX" else int(value)
            self.assertEqual(getattr(sdrt, name), expected, name)
        self.assertGreater(len(names), 15)

    def test_struct_sizes_equal_the_library(self):
        params = sdrt._GenerateParams()
        status = sdrt.library().sdrt_generate_params_init_sized(ctypes.byref(params), ctypes.sizeof(params))
        self.assertEqual(status, 0)
        # The 0.3 layout (the library pins the same size); a binding that lags fails here.
        self.assertEqual(ctypes.sizeof(sdrt._GenerateParams), 216)
        self.assertEqual(params.struct_size, 216)
        self.assertEqual((params.steps, params.batch_size, params.preserve_unmasked), (25, 1, 1))
        options = sdrt._LoadOptions()
        status = sdrt.library().sdrt_load_options_init_sized(ctypes.byref(options), ctypes.sizeof(options))
        self.assertEqual(status, 0)
        # The 0.4 layout (optimized_model_cache appended).
        self.assertEqual(ctypes.sizeof(sdrt._LoadOptions), 72)
        self.assertEqual((options.struct_size, options.graph_optimization_level), (72, 3))
        progress = sdrt._JobProgress()
        sdrt.library().sdrt_job_progress_init(ctypes.byref(progress))
        self.assertEqual(progress.struct_size, ctypes.sizeof(sdrt._JobProgress))

    def test_optimized_model_cache(self):
        with tempfile.TemporaryDirectory() as cache:
            images = []
            for _ in range(2):
                with sdrt.Pipeline(MODEL, intra_op_threads=1, optimized_model_cache=cache) as pipeline:
                    image = pipeline.generate("a red circle", width=64, height=64, steps=2, seed=3)
                    images.append(image.to_bytes())
                    image.close()
                self.assertEqual(len(os.listdir(cache)), 3)
            self.assertEqual(images[0], images[1])

    def test_load_failure_raises(self):
        with self.assertRaises(sdrt.Error) as caught:
            sdrt.Pipeline("/nonexistent/model")
        self.assertEqual(caught.exception.status, 5)
        self.assertIn("/nonexistent/model", str(caught.exception))

    def test_generate_with_progress_equals_a_job(self):
        seen = []
        image = self.pipeline.generate(**small(progress=lambda step, total: seen.append((step, total)) or True))
        self.assertEqual(seen, [(1, 3), (2, 3), (3, 3)])
        self.assertEqual((image.width, image.height), (64, 64))
        pixels = image.to_bytes()
        with self.pipeline.submit(**small()) as job:
            images = self.pipeline.wait_for(job)
            self.assertEqual(job.poll(), (sdrt.JOB_DONE, 3, 3))
        self.assertEqual(images[0].to_bytes(), pixels)
        flipped = image.to_bytes(sdrt.PIXEL_FORMAT_RGBA8, flip_vertical=True)
        self.assertEqual(flipped[0:3], pixels[63 * 192:63 * 192 + 3])
        self.assertEqual(flipped[3], 255)

    def test_callback_exception_is_reraised(self):
        def stop(step, total):
            if step == 2:
                raise KeyError("from the callback")
            return True

        with self.assertRaises(KeyError):
            self.pipeline.generate(**small(steps=5, progress=stop))
        with self.assertRaises(sdrt.Error) as caught:
            self.pipeline.generate(**small(progress=lambda step, total: False))
        self.assertEqual(caught.exception.status, sdrt.STATUS_CANCELLED)
        self.assertEqual(self.pipeline.generate(**small(steps=1)).width, 64)

    def test_job_cancel(self):
        with self.pipeline.submit(**small(steps=400)) as job:
            while job.poll()[1] < 1:
                time.sleep(0.001)
            self.assertFalse(job.wait(0))
            job.cancel()
            self.assertTrue(job.wait())
            self.assertEqual(job.poll()[0], sdrt.JOB_CANCELLED)
            with self.assertRaises(sdrt.Error) as caught:
                job.take_images()
            self.assertEqual(caught.exception.status, sdrt.STATUS_CANCELLED)

    def test_loras_by_handle_and_by_prompt_tag(self):
        folder = os.path.join(ROOT, "tests", "fixtures", "lora")
        plain = self.pipeline.generate(**small()).to_bytes()
        with sdrt.Lora(os.path.join(folder, "sd15_unet.safetensors")) as lora:
            self.assertEqual(lora.name, "sd15_unet")
            merged = self.pipeline.generate(**small(loras=[(lora, 0.7)])).to_bytes()
        self.assertNotEqual(merged, plain)
        tagged = small(prompt="a red circle on a blue background <lora:sd15_unet:0.7>", lora_dir=folder)
        self.assertEqual(self.pipeline.generate(**tagged).to_bytes(), merged)
        self.assertEqual(self.pipeline.generate(**small()).to_bytes(), plain)
        with self.assertRaises(sdrt.Error) as caught:
            sdrt.Lora(os.path.join(folder, "missing.safetensors"))
        self.assertIn("missing.safetensors", str(caught.exception))

    def test_embeddings(self):
        folder = os.path.join(ROOT, "tests", "fixtures", "embeddings")
        prompt = "a sdrtcat on a blue background"
        plain = self.pipeline.generate(**small(prompt=prompt)).to_bytes()
        with sdrt.Embedding(os.path.join(folder, "sdrtcat.safetensors")) as cat:
            self.assertEqual(cat.token, "sdrtcat")
            with_cat = self.pipeline.generate(**small(prompt=prompt, embeddings=[cat])).to_bytes()
        self.assertNotEqual(with_cat, plain)
        with self.assertRaises(sdrt.Error) as caught:
            sdrt.Embedding(os.path.join(folder, "sdrtcat.safetensors"), token="two words")
        self.assertIn("one word", str(caught.exception))

    def test_bad_scheduler_name(self):
        with self.assertRaises(sdrt.Error) as caught:
            self.pipeline.generate(**small(scheduler="no such sampler"))
        self.assertIn("no such sampler", str(caught.exception))


if __name__ == "__main__":
    MODEL = sys.argv.pop(1)
    unittest.main(verbosity=1)
