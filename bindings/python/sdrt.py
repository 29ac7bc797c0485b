"""sdrt from Python, through ctypes (no build step, no dependency).

    import sdrt
    with sdrt.Pipeline("sd15-onnx") as pipeline:          # None: the model built into sdrt
        image = pipeline.generate("a lighthouse at dusk", seed=42, steps=30)
        image.save_png("lighthouse.png")

The library is found through $SDRT_LIBRARY, beside this file, then the system's search path.
Failures raise sdrt.Error (status and message). A progress callback returns False to cancel;
an exception it raises stops the generation and is re-raised by generate().
"""

import ctypes
import ctypes.util
import os
import time

ABI_VERSION = 1

# Values of include/sdrt.h's constants (tests/python/test_binding.py checks them).
STATUS_OK, STATUS_CANCELLED, STATUS_TIMEOUT = 0, 10, 12
JOB_QUEUED, JOB_RUNNING, JOB_DONE, JOB_FAILED, JOB_CANCELLED = 0, 1, 2, 3, 4
PIXEL_FORMAT_RGB8, PIXEL_FORMAT_RGBA8, PIXEL_FORMAT_BGRA8 = 0, 1, 2
RNG_NUMPY, RNG_TORCH, RNG_PHILOX = 0, 1, 2
WAIT_FOREVER = 0xFFFFFFFF

_c = ctypes
_PROGRESS = _c.CFUNCTYPE(_c.c_int32, _c.c_void_p, _c.c_uint32, _c.c_uint32)


class _GenerateParams(_c.Structure):
    _fields_ = [
        ("struct_size", _c.c_uint32), ("width", _c.c_uint32), ("height", _c.c_uint32), ("steps", _c.c_uint32),
        ("seed", _c.c_uint64), ("strength", _c.c_double), ("guidance_scale", _c.c_float),
        ("guidance_rescale", _c.c_float), ("scheduler", _c.c_int32), ("rng", _c.c_int32),
        ("sigma_schedule", _c.c_int32), ("prompt_syntax", _c.c_int32), ("batch_size", _c.c_uint32),
        ("clip_skip", _c.c_uint32), ("preserve_unmasked", _c.c_uint32), ("preview_every", _c.c_uint32),
        ("preview_kind", _c.c_int32), ("reserved", _c.c_uint32), ("prompt", _c.c_char_p),
        ("negative_prompt", _c.c_char_p), ("initial_noise", _c.POINTER(_c.c_float)),
        ("initial_noise_len", _c.c_size_t), ("init_image", _c.c_void_p), ("mask_image", _c.c_void_p),
        ("progress_callback", _PROGRESS), ("progress_user_data", _c.c_void_p),
        ("preview_callback", _c.c_void_p), ("preview_user_data", _c.c_void_p),
        # Appended in 0.2.
        ("loras", _c.POINTER(_c.c_void_p)), ("lora_strengths", _c.POINTER(_c.c_float)),
        ("lora_count", _c.c_size_t), ("lora_dir", _c.c_char_p),
        ("embeddings", _c.POINTER(_c.c_void_p)), ("embedding_count", _c.c_size_t),
        # Appended in 0.3.
        ("vae_tiling", _c.c_int32), ("vae_tile_size", _c.c_uint32),
    ]


class _LoadOptions(_c.Structure):
    _fields_ = [
        ("struct_size", _c.c_uint32), ("provider_policy", _c.c_int32), ("intra_op_threads", _c.c_int32),
        ("graph_optimization_level", _c.c_int32), ("low_memory", _c.c_uint32), ("reserved", _c.c_uint32),
        ("ort_library_path", _c.c_char_p), ("providers", _c.c_void_p), ("provider_count", _c.c_size_t),
        ("log_callback", _c.c_void_p), ("log_user_data", _c.c_void_p),
        # Appended in 0.4.
        ("optimized_model_cache", _c.c_char_p),
    ]


class _JobProgress(_c.Structure):
    _fields_ = [("struct_size", _c.c_uint32), ("state", _c.c_int32), ("step", _c.c_uint32),
                ("total_steps", _c.c_uint32), ("preview_step", _c.c_uint32)]


def _find_library():
    explicit = os.environ.get("SDRT_LIBRARY")
    if explicit:
        return explicit
    beside = os.path.join(os.path.dirname(os.path.abspath(__file__)), "libsdrt.so")
    if os.path.exists(beside):
        return beside
    return ctypes.util.find_library("sdrt") or "libsdrt.so"


def _declare(lib):
    p, u32, i32, size = _c.c_void_p, _c.c_uint32, _c.c_int32, _c.c_size_t
    signatures = {
        "sdrt_abi_version": (u32, []),
        "sdrt_version": (_c.c_char_p, []),
        "sdrt_status_str": (_c.c_char_p, [i32]),
        "sdrt_last_error_message": (size, [_c.c_char_p, size]),
        "sdrt_generate_params_init_sized": (i32, [_c.POINTER(_GenerateParams), _c.c_size_t]),
        "sdrt_load_options_init_sized": (i32, [_c.POINTER(_LoadOptions), _c.c_size_t]),
        "sdrt_job_progress_init": (None, [_c.POINTER(_JobProgress)]),
        "sdrt_sampler_from_name": (i32, [_c.c_char_p, _c.POINTER(i32), _c.POINTER(i32)]),
        "sdrt_rng_from_name": (i32, [_c.c_char_p, _c.POINTER(i32)]),
        "sdrt_pipeline_load": (i32, [_c.c_char_p, _c.POINTER(_LoadOptions), _c.POINTER(p)]),
        "sdrt_pipeline_free": (None, [p]),
        "sdrt_pipeline_recommended_settings": (i32, [p, _c.POINTER(u32), _c.POINTER(_c.c_float)]),
        "sdrt_pipeline_generate_batch": (i32, [p, _c.POINTER(_GenerateParams), _c.POINTER(p), size]),
        "sdrt_pipeline_submit": (i32, [p, _c.POINTER(_GenerateParams), _c.POINTER(p)]),
        "sdrt_job_poll": (i32, [p, _c.POINTER(_JobProgress)]),
        "sdrt_job_wait": (i32, [p, u32]),
        "sdrt_job_cancel": (i32, [p]),
        "sdrt_job_take_images": (i32, [p, _c.POINTER(p), size, _c.POINTER(size)]),
        "sdrt_job_free": (None, [p]),
        "sdrt_image_load": (i32, [_c.c_char_p, _c.POINTER(p)]),
        "sdrt_image_width": (u32, [p]),
        "sdrt_image_height": (u32, [p]),
        "sdrt_image_copy_pixels": (i32, [p, i32, u32, _c.c_char_p, size, size]),
        "sdrt_image_save_png": (i32, [p, _c.c_char_p]),
        "sdrt_image_free": (None, [p]),
        "sdrt_lora_load": (i32, [_c.c_char_p, _c.POINTER(p)]),
        "sdrt_lora_name": (_c.c_char_p, [p]),
        "sdrt_lora_free": (None, [p]),
        "sdrt_embedding_load": (i32, [_c.c_char_p, _c.c_char_p, _c.POINTER(p)]),
        "sdrt_embedding_token": (_c.c_char_p, [p]),
        "sdrt_embedding_free": (None, [p]),
    }
    for name, (restype, argtypes) in signatures.items():
        function = getattr(lib, name)
        function.restype, function.argtypes = restype, argtypes
    return lib


_lib = None


def library():
    """The loaded libsdrt, its ABI checked (loaded on first use)."""
    global _lib
    if _lib is None:
        lib = _declare(ctypes.CDLL(_find_library()))
        if lib.sdrt_abi_version() != ABI_VERSION:
            raise Error(7, "libsdrt has C ABI version %d, this binding needs %d" % (lib.sdrt_abi_version(), ABI_VERSION))
        _lib = lib
    return _lib


class Error(Exception):
    """A failed sdrt call: `status` (SDRT_STATUS_*) and sdrt's message."""

    def __init__(self, status, message):
        super().__init__(message)
        self.status = status

    @classmethod
    def last(cls, status):
        lib = library()
        needed = lib.sdrt_last_error_message(None, 0)
        buffer = ctypes.create_string_buffer(needed)
        lib.sdrt_last_error_message(buffer, needed)
        return cls(status, buffer.value.decode("utf-8"))


def _check(status):
    if status != STATUS_OK:
        raise Error.last(status)


def _utf8(text):
    return None if text is None else text.encode("utf-8")


def version():
    return library().sdrt_version().decode()


class Image:
    """An RGB picture owned by sdrt."""

    def __init__(self, handle):
        self._handle = _c.c_void_p(handle)

    @classmethod
    def load(cls, path):
        handle = _c.c_void_p()
        _check(library().sdrt_image_load(_utf8(os.fspath(path)), _c.byref(handle)))
        return cls(handle.value)

    @property
    def width(self):
        return library().sdrt_image_width(self._handle)

    @property
    def height(self):
        return library().sdrt_image_height(self._handle)

    def to_bytes(self, pixel_format=PIXEL_FORMAT_RGB8, flip_vertical=False):
        """Packed rows in RGB8, RGBA8 or BGRA8, bottom-up when flip_vertical."""
        channels = 3 if pixel_format == PIXEL_FORMAT_RGB8 else 4
        buffer = ctypes.create_string_buffer(self.width * self.height * channels)
        _check(library().sdrt_image_copy_pixels(self._handle, pixel_format, int(flip_vertical), buffer,
                                                len(buffer), 0))
        return buffer.raw

    def save_png(self, path):
        _check(library().sdrt_image_save_png(self._handle, _utf8(os.fspath(path))))

    def close(self):
        if self._handle:
            library().sdrt_image_free(self._handle)
            self._handle = _c.c_void_p()

    __del__ = close

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.close()


class Lora:
    """A LoRA file (.safetensors: kohya/A1111, diffusers or PEFT names), read once and usable by
    any pipeline: pipeline.generate(..., loras=[(lora, 0.8)])."""

    def __init__(self, path):
        handle = _c.c_void_p()
        _check(library().sdrt_lora_load(_utf8(os.fspath(path)), _c.byref(handle)))
        self._handle = handle

    @property
    def name(self):
        return library().sdrt_lora_name(self._handle).decode("utf-8")

    def close(self):
        if getattr(self, "_handle", None):
            library().sdrt_lora_free(self._handle)
            self._handle = None

    __del__ = close

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.close()


class Embedding:
    """A textual-inversion embedding (.safetensors): `token` (default: the file's token or name)
    stands for its vectors in prompts: pipeline.generate("a photo of mytoken", embeddings=[e])."""

    def __init__(self, path, token=None):
        handle = _c.c_void_p()
        _check(library().sdrt_embedding_load(_utf8(os.fspath(path)), _utf8(token), _c.byref(handle)))
        self._handle = handle

    @property
    def token(self):
        return library().sdrt_embedding_token(self._handle).decode("utf-8")

    def close(self):
        if getattr(self, "_handle", None):
            library().sdrt_embedding_free(self._handle)
            self._handle = None

    __del__ = close

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.close()


class Job:
    """A generation on the pipeline's own thread: poll(), wait(), cancel(), take_images()."""

    def __init__(self, handle):
        self._handle = _c.c_void_p(handle)

    def poll(self):
        """(state, step, total_steps); never blocks."""
        progress = _JobProgress()
        library().sdrt_job_progress_init(_c.byref(progress))
        _check(library().sdrt_job_poll(self._handle, _c.byref(progress)))
        return progress.state, progress.step, progress.total_steps

    def wait(self, timeout_ms=WAIT_FOREVER):
        status = library().sdrt_job_wait(self._handle, timeout_ms)
        if status == STATUS_TIMEOUT:
            return False
        _check(status)
        return True

    def cancel(self):
        _check(library().sdrt_job_cancel(self._handle))

    def take_images(self):
        images = (_c.c_void_p * 64)()
        count = _c.c_size_t()
        _check(library().sdrt_job_take_images(self._handle, images, 64, _c.byref(count)))
        return [Image(images[i]) for i in range(count.value)]

    def close(self):
        if self._handle:
            library().sdrt_job_free(self._handle)
            self._handle = _c.c_void_p()

    __del__ = close

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.close()


class Pipeline:
    """A loaded model; `model_dir` None is the model built into sdrt. intra_op_threads 0 runs
    on the process's shared pool; optimized_model_cache is a folder where graphs are kept as
    ONNX Runtime optimised them, for the next load (see sdrt_load_options in sdrt.h)."""

    def __init__(self, model_dir=None, low_memory=False, intra_op_threads=0, optimized_model_cache=None):
        lib = library()
        options = _LoadOptions()
        _check(lib.sdrt_load_options_init_sized(_c.byref(options), _c.sizeof(options)))
        options.low_memory, options.intra_op_threads = int(bool(low_memory)), intra_op_threads
        cache = None if optimized_model_cache is None else os.fspath(optimized_model_cache)
        options.optimized_model_cache = _utf8(cache)
        handle = _c.c_void_p()
        path = None if model_dir is None else os.fspath(model_dir)
        _check(lib.sdrt_pipeline_load(_utf8(path), _c.byref(options), _c.byref(handle)))
        self._handle = handle

    def _params(self, prompt="", negative_prompt="", width=0, height=0, steps=0, guidance_scale=None, seed=0,
                scheduler=None, rng=None, batch_size=1, init_image=None, strength=0.8, loras=(), lora_dir=None,
                embeddings=(), vae_tiling="auto", vae_tile_size=0):
        """sdrt_generate_params for one call; steps 0 and guidance None: the model's defaults.
        loras: (Lora, strength) pairs; lora_dir: where <lora:NAME:STRENGTH> prompt tags look;
        embeddings: Embedding objects; vae_tiling: "auto", "off" or "on"; vae_tile_size: pixels,
        0 for the model's size."""
        lib = library()
        params = _GenerateParams()
        # Sized: the library writes exactly this binding's struct, whatever its own size.
        _check(lib.sdrt_generate_params_init_sized(_c.byref(params), _c.sizeof(params)))
        recommended_steps, recommended_guidance = _c.c_uint32(), _c.c_float()
        _check(lib.sdrt_pipeline_recommended_settings(self._handle, _c.byref(recommended_steps),
                                                       _c.byref(recommended_guidance)))
        params.prompt, params.negative_prompt = _utf8(prompt), _utf8(negative_prompt)
        params.width, params.height = width, height
        params.steps = steps if steps else recommended_steps.value
        params.guidance_scale = recommended_guidance.value if guidance_scale is None else guidance_scale
        params.seed, params.batch_size = seed, batch_size
        if scheduler is not None:
            kind, sigmas = _c.c_int32(), _c.c_int32()
            _check(lib.sdrt_sampler_from_name(_utf8(scheduler), _c.byref(kind), _c.byref(sigmas)))
            params.scheduler, params.sigma_schedule = kind.value, sigmas.value
        if rng is not None:
            value = _c.c_int32()
            _check(lib.sdrt_rng_from_name(_utf8(rng), _c.byref(value)))
            params.rng = value.value
        if init_image is not None:
            params.init_image, params.strength = init_image._handle.value, strength
        if loras:
            handles = (_c.c_void_p * len(loras))(*[lora._handle.value for lora, _ in loras])
            strengths = (_c.c_float * len(loras))(*[strength for _, strength in loras])
            params.loras, params.lora_strengths, params.lora_count = handles, strengths, len(loras)
            params._keep_alive = (handles, strengths)
        params.lora_dir = _utf8(None if lora_dir is None else os.fspath(lora_dir))
        tiling_modes = {"auto": 0, "off": 1, "on": 2}
        if vae_tiling not in tiling_modes:
            raise ValueError(f"vae_tiling must be one of {sorted(tiling_modes)}, not {vae_tiling!r}")
        params.vae_tiling, params.vae_tile_size = tiling_modes[vae_tiling], vae_tile_size
        if embeddings:
            handles = (_c.c_void_p * len(embeddings))(*[e._handle.value for e in embeddings])
            params.embeddings, params.embedding_count = handles, len(embeddings)
            params._keep_embeddings = handles
        return params

    def generate_batch(self, prompt="", progress=None, **options):
        """batch_size images; progress(step, total_steps) -> bool runs on this thread. Options:
        negative_prompt, width, height, steps, guidance_scale, seed, scheduler, rng, batch_size,
        init_image, strength, loras, lora_dir, embeddings."""
        params = self._params(prompt, **options)
        batch_size = params.batch_size
        raised = []

        def trampoline(_user_data, step, total):
            try:
                return 1 if progress(step, total) else 0
            except BaseException as e:  # never unwind through sdrt's frames
                raised.append(e)
                return 0

        callback = _PROGRESS(trampoline) if progress else _PROGRESS()
        params.progress_callback = callback
        images = (_c.c_void_p * batch_size)()
        status = library().sdrt_pipeline_generate_batch(self._handle, _c.byref(params), images, batch_size)
        if raised:
            raise raised[0]
        _check(status)
        return [Image(images[i]) for i in range(batch_size)]

    def generate(self, prompt="", **options):
        """One image; the keyword arguments of generate_batch."""
        return self.generate_batch(prompt, **options)[0]

    def submit(self, prompt="", **options):
        """Queues a generation on the pipeline's thread; returns a Job at once (generate_batch's
        options, no progress)."""
        params = self._params(prompt, **options)
        job = _c.c_void_p()
        _check(library().sdrt_pipeline_submit(self._handle, _c.byref(params), _c.byref(job)))
        return Job(job.value)

    def wait_for(self, job, poll_seconds=0.01):
        """Polls `job` until it ends (a loop a GUI can interleave with its own work)."""
        while job.poll()[0] < JOB_DONE:
            time.sleep(poll_seconds)
        return job.take_images()

    def close(self):
        if getattr(self, "_handle", None):
            library().sdrt_pipeline_free(self._handle)
            self._handle = None

    __del__ = close

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.close()
