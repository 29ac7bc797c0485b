// sdrt for C#: Pipeline, Job and Image over the C ABI (Native.cs). C# 7.2 and the base class
// library only, so Unity (Mono and IL2CPP), Mono and modern .NET all build it.
//
//   using (var pipeline = Pipeline.Load("sd15-onnx"))          // null: the embedded model
//   using (var image = pipeline.Generate(new GenerateOptions { Prompt = "a lighthouse" }))
//       image.SavePng("lighthouse.png");
//
// Failures throw SdrtException (the status and sdrt's message, read on the failing thread).
// Handles are SafeHandles: Dispose frees at once, the finalizer if you forget.
using System;
using System.Collections.Generic;
using System.Runtime.ExceptionServices;
using System.Runtime.InteropServices;
using System.Text;
using System.Threading;
using System.Threading.Tasks;

namespace Sdrt
{
    // The values of include/sdrt.h's SDRT_* constants; a test parses the header and fails on drift.
    public enum Status { Ok = 0, InvalidArgument = 1, NullPointer = 2, InvalidUtf8 = 3, Io = 4, InvalidModel = 5, UnsupportedModel = 6, RuntimeUnavailable = 7, ProviderUnavailable = 8, InferenceFailed = 9, Cancelled = 10, Panic = 11, Timeout = 12, Busy = 13 }
    public enum Scheduler { Default = 0, Pndm = 1, Ddim = 2, Euler = 3, Dpmpp2m = 4, Dpmpp2mKarras = 5, Lms = 6, Heun = 7, EulerAncestral = 8, Ddpm = 9, Dpm2 = 10, Dpm2Ancestral = 11, Dpmpp2mSde = 12, DpmppSde = 13, Unipc = 14, Lcm = 15 }
    public enum SigmaSchedule { Default = 0, TrainingSchedule = 1, Karras = 2, Exponential = 3 }
    public enum PromptSyntax { Weighted = 0, Plain = 1 }
    public enum Rng { Numpy = 0, Torch = 1, Philox = 2 }
    public enum PreviewKind { Approximate = 0, Decode = 1 }
    public enum VaeTiling { Auto = 0, Off = 1, On = 2 }
    public enum PixelFormat { Rgb8 = 0, Rgba8 = 1, Bgra8 = 2 }
    public enum JobState { Queued = 0, Running = 1, Done = 2, Failed = 3, Cancelled = 4 }
    public enum LogLevel { Error = 1, Warning = 2, Info = 3, Debug = 4 }
    public enum ProviderKind { Cpu = 0, Cuda = 1, Directml = 2, Coreml = 3, Webgpu = 4 }
    public enum ProviderPolicy { FallBackToCpu = 0, Fail = 1 }

    /// <summary>A failed sdrt call: its status and sdrt's message.</summary>
    public sealed class SdrtException : Exception
    {
        public Status Status { get; private set; }

        public SdrtException(Status status, string message) : base(message) { Status = status; }

        /// <summary>Throws the error of the call that just failed on this thread, if it failed.</summary>
        internal static void Check(int status)
        {
            if (status != 0) throw FromLastError(status);
        }

        internal static SdrtException FromLastError(int status)
        {
            ulong needed = (ulong)Native.sdrt_last_error_message(null, UIntPtr.Zero);  // with the NUL
            var buffer = new byte[needed];
            Native.sdrt_last_error_message(buffer, (UIntPtr)needed);
            string message = Encoding.UTF8.GetString(buffer, 0, Math.Max(0, (int)needed - 1));
            return new SdrtException((Status)status, message);
        }
    }

    /// <summary>Unity's IL2CPP compiles a native-callable method ahead of time only when it
    /// carries an attribute of this name; Mono and .NET ignore it.</summary>
    [AttributeUsage(AttributeTargets.Method)]
    internal sealed class MonoPInvokeCallbackAttribute : Attribute
    {
        public MonoPInvokeCallbackAttribute(Type type) { }
    }

    internal static class Utf8
    {
        /// <summary>NUL-terminated UTF-8, or null for null.</summary>
        public static byte[] Bytes(string text)
        {
            if (text == null) return null;
            int length = Encoding.UTF8.GetByteCount(text);
            var bytes = new byte[length + 1];
            Encoding.UTF8.GetBytes(text, 0, text.Length, bytes, 0);
            return bytes;
        }

        public static string FromStatic(IntPtr text)
        {
            if (text == IntPtr.Zero) return null;
            int length = 0;
            while (Marshal.ReadByte(text, length) != 0) length++;
            var bytes = new byte[length];
            Marshal.Copy(text, bytes, 0, length);
            return Encoding.UTF8.GetString(bytes);
        }
    }

    /// <summary>Unmanaged copies that live for one native call.</summary>
    internal sealed class CallScope : IDisposable
    {
        private readonly List<IntPtr> blocks = new List<IntPtr>();
        private readonly List<GCHandle> pins = new List<GCHandle>();

        public IntPtr String(string text)
        {
            byte[] bytes = Utf8.Bytes(text);
            if (bytes == null) return IntPtr.Zero;
            IntPtr block = Marshal.AllocHGlobal(bytes.Length);
            blocks.Add(block);
            Marshal.Copy(bytes, 0, block, bytes.Length);
            return block;
        }

        public IntPtr Pin(object value)
        {
            GCHandle pin = GCHandle.Alloc(value, GCHandleType.Pinned);
            pins.Add(pin);
            return pin.AddrOfPinnedObject();
        }

        public IntPtr Struct<T>(T value) where T : struct
        {
            IntPtr block = Marshal.AllocHGlobal(Marshal.SizeOf(typeof(T)));
            blocks.Add(block);
            Marshal.StructureToPtr(value, block, false);
            return block;
        }

        public IntPtr Array<T>(IList<T> values) where T : struct
        {
            if (values.Count == 0) return IntPtr.Zero;
            int size = Marshal.SizeOf(typeof(T));
            IntPtr block = Marshal.AllocHGlobal(size * values.Count);
            blocks.Add(block);
            for (int i = 0; i < values.Count; i++) Marshal.StructureToPtr(values[i], block + i * size, false);
            return block;
        }

        public void Dispose()
        {
            foreach (IntPtr block in blocks) Marshal.FreeHGlobal(block);
            foreach (GCHandle pin in pins) pin.Free();
            blocks.Clear();
            pins.Clear();
        }
    }

    /// <summary>Process-wide settings and queries.</summary>
    public static class Library
    {
        /// <summary>The C ABI version this binding is written for.</summary>
        public const uint AbiVersion = 1;
        /// <summary>sdrt_job_wait's "as long as it takes".</summary>
        public const uint WaitForever = uint.MaxValue;

        private static readonly object logLock = new object();
        private static Action<LogLevel, string> logCallback;
        // Kept in a static field: the native side holds a pointer to it for the process's life.
        private static readonly RawLogCallback logTrampoline = ForwardLog;

        /// <summary>The library's version, such as "0.1.0".</summary>
        public static string Version { get { return Utf8.FromStatic(Native.sdrt_version()); } }

        /// <summary>Fails when the native library is not the ABI this binding was written for
        /// (a stale libsdrt beside a newer binding, or the reverse).</summary>
        public static void CheckAbi()
        {
            uint native;
            try
            {
                native = Native.sdrt_abi_version();
            }
            catch (DllNotFoundException e)
            {
                throw new SdrtException(Status.RuntimeUnavailable, "the sdrt native library was not found: " + e.Message);
            }
            if (native != AbiVersion)
                throw new SdrtException(Status.RuntimeUnavailable, string.Format(
                    "the sdrt native library has C ABI version {0}, this binding needs {1}", native, AbiVersion));
        }

        /// <summary>Sets up ONNX Runtime before the first load: its library (null: the usual
        /// search) and the shared thread pool's size (0: the core count).</summary>
        public static void RuntimeInit(string ortLibraryPath, uint sharedThreads)
        {
            CheckAbi();
            SdrtException.Check(Native.sdrt_runtime_init(Utf8.Bytes(ortLibraryPath), sharedThreads));
        }

        /// <summary>Whether the ONNX Runtime library sdrt uses has this execution provider.</summary>
        public static bool ProviderAvailable(ProviderKind kind)
        {
            CheckAbi();
            uint available;
            SdrtException.Check(Native.sdrt_provider_available((int)kind, out available));
            return available != 0;
        }

        /// <summary>A sampler's name ("euler_a", "dpmpp_2m_karras", a diffusers class name).</summary>
        public static void SamplerFromName(string name, out Scheduler scheduler, out SigmaSchedule sigmas)
        {
            int rawScheduler, rawSigmas;
            SdrtException.Check(Native.sdrt_sampler_from_name(Utf8.Bytes(name), out rawScheduler, out rawSigmas));
            scheduler = (Scheduler)rawScheduler;
            sigmas = (SigmaSchedule)rawSigmas;
        }

        public static Rng RngFromName(string name)
        {
            int rng;
            SdrtException.Check(Native.sdrt_rng_from_name(Utf8.Bytes(name), out rng));
            return (Rng)rng;
        }

        /// <summary>sdrt's and ONNX Runtime's messages at minLevel or more severe, from any
        /// thread; null sends them back to stderr. What the callback throws is dropped.</summary>
        public static void SetLogCallback(Action<LogLevel, string> callback, LogLevel minLevel = LogLevel.Warning)
        {
            CheckAbi();
            lock (logLock)
            {
                logCallback = callback;
                SdrtException.Check(Native.sdrt_set_log_callback(callback == null ? null : logTrampoline, IntPtr.Zero, (int)minLevel));
            }
        }

        [MonoPInvokeCallback(typeof(RawLogCallback))]
        private static void ForwardLog(IntPtr userData, int level, IntPtr message)
        {
            Action<LogLevel, string> callback = logCallback;
            if (callback == null) return;
            try
            {
                callback((LogLevel)level, Utf8.FromStatic(message));
            }
            catch (Exception)
            {
                // Nothing above this frame can receive it; never let it unwind into native code.
            }
        }
    }

    /// <summary>An RGB picture owned by sdrt.</summary>
    public sealed class Image : IDisposable
    {
        internal readonly ImageHandle Handle;

        internal Image(ImageHandle handle) { Handle = handle; }

        public uint Width { get { return Native.sdrt_image_width(Handle); } }
        public uint Height { get { return Native.sdrt_image_height(Handle); } }

        public static Image Load(string path)
        {
            ImageHandle handle;
            SdrtException.Check(Native.sdrt_image_load(Utf8.Bytes(path), out handle));
            return new Image(handle);
        }

        /// <summary>An image from interleaved pixels (alpha is dropped); stride 0: packed rows;
        /// flipVertical for bottom-up buffers such as Unity textures.</summary>
        public static Image FromPixels(uint width, uint height, PixelFormat format, byte[] pixels, int stride = 0, bool flipVertical = false)
        {
            if (pixels == null) throw new ArgumentNullException("pixels");
            ImageHandle handle;
            SdrtException.Check(Native.sdrt_image_from_pixels(width, height, (int)format, flipVertical ? 1u : 0u, pixels,
                (UIntPtr)(ulong)pixels.Length, (UIntPtr)(ulong)stride, out handle));
            return new Image(handle);
        }

        /// <summary>Copies the pixels into dst in format (alpha 255), rows stride bytes apart
        /// (0: packed), bottom-up when flipVertical (Unity's Texture2D.LoadRawTextureData).</summary>
        public void CopyTo(byte[] dst, PixelFormat format, int stride = 0, bool flipVertical = false)
        {
            if (dst == null) throw new ArgumentNullException("dst");
            SdrtException.Check(Native.sdrt_image_copy_pixels(Handle, (int)format, flipVertical ? 1u : 0u, dst,
                (UIntPtr)(ulong)dst.Length, (UIntPtr)(ulong)stride));
        }

        /// <summary>The pixels as packed rows in format.</summary>
        public byte[] ToBytes(PixelFormat format = PixelFormat.Rgba8, bool flipVertical = false)
        {
            int channels = format == PixelFormat.Rgb8 ? 3 : 4;
            var pixels = new byte[checked((int)(Width * Height * (uint)channels))];
            CopyTo(pixels, format, 0, flipVertical);
            return pixels;
        }

        public void SavePng(string path)
        {
            SdrtException.Check(Native.sdrt_image_save_png(Handle, Utf8.Bytes(path)));
        }

        public void Dispose() { Handle.Dispose(); }
    }

    /// <summary>A LoRA file (.safetensors: kohya/A1111, diffusers or PEFT names, LoCon), read
    /// once; any pipeline and thread may use it. Pass it in GenerateOptions.Loras.</summary>
    public sealed class Lora : IDisposable
    {
        internal readonly LoraHandle Handle;

        private Lora(LoraHandle handle) { Handle = handle; }

        public static Lora Load(string path)
        {
            LoraHandle handle;
            SdrtException.Check(Native.sdrt_lora_load(Utf8.Bytes(path), out handle));
            return new Lora(handle);
        }

        /// <summary>A LoRA from a .safetensors file's bytes; name is what messages call it.</summary>
        public static Lora FromMemory(string name, byte[] bytes)
        {
            if (bytes == null) throw new ArgumentNullException("bytes");
            LoraHandle handle;
            SdrtException.Check(Native.sdrt_lora_load_from_memory(Utf8.Bytes(name), bytes, (UIntPtr)(ulong)bytes.Length, out handle));
            return new Lora(handle);
        }

        /// <summary>The file name without extension.</summary>
        public string Name { get { return Utf8.FromStatic(Native.sdrt_lora_name(Handle)); } }

        public void Dispose() { Handle.Dispose(); }
    }

    /// <summary>A textual-inversion embedding (.safetensors): its Token stands for its vectors in
    /// prompts. Pass it in GenerateOptions.Embeddings.</summary>
    public sealed class Embedding : IDisposable
    {
        internal readonly EmbeddingHandle Handle;

        private Embedding(EmbeddingHandle handle) { Handle = handle; }

        /// <summary>token null: the token a diffusers file names, else the file name.</summary>
        public static Embedding Load(string path, string token = null)
        {
            EmbeddingHandle handle;
            SdrtException.Check(Native.sdrt_embedding_load(Utf8.Bytes(path), Utf8.Bytes(token), out handle));
            return new Embedding(handle);
        }

        public string Token { get { return Utf8.FromStatic(Native.sdrt_embedding_token(Handle)); } }

        public void Dispose() { Handle.Dispose(); }
    }

    /// <summary>A LoRA and the strength to merge it at (1: as trained).</summary>
    public struct LoraStrength
    {
        public Lora Lora;
        public float Strength;

        public LoraStrength(Lora lora, float strength = 1f) { Lora = lora; Strength = strength; }
    }

    /// <summary>What to generate. Width and Height 0 take the model's size; Steps 0 and a null
    /// GuidanceScale take the model family's recommendation.</summary>
    public sealed class GenerateOptions
    {
        public string Prompt = "";
        public string NegativePrompt = "";
        public uint Width;
        public uint Height;
        public uint Steps;
        public float? GuidanceScale;
        public ulong Seed;
        public Scheduler Scheduler = Scheduler.Default;
        public SigmaSchedule SigmaSchedule = SigmaSchedule.Default;
        public Rng Rng = Rng.Numpy;
        public PromptSyntax PromptSyntax = PromptSyntax.Weighted;
        public uint BatchSize = 1;
        public uint ClipSkip;
        public float GuidanceRescale;
        public double Strength = 0.8;
        public bool PreserveUnmasked = true;
        /// <summary>Image to image: the picture to start from (read during the call).</summary>
        public Image InitImage;
        /// <summary>Inpainting, with InitImage: white repaints, black keeps.</summary>
        public Image MaskImage;
        /// <summary>N(0,1) starting noise for [batch, 4, height/8, width/8]; null: from Seed.</summary>
        public float[] InitialNoise;
        public uint PreviewEvery;
        public PreviewKind PreviewKind = PreviewKind.Approximate;
        /// <summary>LoRAs merged for this generation; a set other than the last one reloads the
        /// graphs it changes, the same set again costs nothing.</summary>
        public List<LoraStrength> Loras = new List<LoraStrength>();
        /// <summary>Where &lt;lora:NAME:STRENGTH&gt; prompt tags find NAME.safetensors.</summary>
        public string LoraDir;
        /// <summary>Textual-inversion embeddings for this generation.</summary>
        public List<Embedding> Embeddings = new List<Embedding>();
        /// <summary>Whether the VAE runs in tiles: Auto tiles images of 4 tiles' pixels and up.</summary>
        public VaeTiling VaeTiling = VaeTiling.Auto;
        /// <summary>Tile side in pixels, a multiple of 32; 0: the model's image size.</summary>
        public uint VaeTileSize;
    }

    public sealed class ExecutionProvider
    {
        public ProviderKind Kind;
        public int DeviceId;
        /// <summary>ONNX Runtime's own options for the provider, such as CUDA's gpu_mem_limit.</summary>
        public Dictionary<string, string> Options = new Dictionary<string, string>();
    }

    public sealed class LoadOptions
    {
        /// <summary>Providers to try in order; empty: CPU.</summary>
        public List<ExecutionProvider> Providers = new List<ExecutionProvider>();
        public ProviderPolicy ProviderPolicy = ProviderPolicy.FallBackToCpu;
        /// <summary>0: the process's shared thread pool; N: a pool of N threads per graph.</summary>
        public int IntraOpThreads;
        public int GraphOptimizationLevel = 3;
        public bool LowMemory;
        /// <summary>The ONNX Runtime library; null: the usual search.</summary>
        public string OrtLibraryPath;
        /// <summary>A folder for graphs as ONNX Runtime optimised them, read by the next load
        /// of the same model (see the header's sdrt_load_options.optimized_model_cache); null:
        /// no cache. Since 0.4.</summary>
        public string OptimizedModelCache;
        /// <summary>This load's messages, on the calling thread, during Load only. An exception
        /// it throws is rethrown by Load.</summary>
        public Action<LogLevel, string> OnLog;
    }

    /// <summary>Where a job is.</summary>
    public struct Progress
    {
        public JobState State;
        /// <summary>Denoising steps done, of TotalSteps.</summary>
        public uint Step;
        public uint TotalSteps;
        /// <summary>The step of the newest preview; 0 while there is none.</summary>
        public uint PreviewStep;
        public bool IsFinished { get { return State >= JobState.Done; } }
    }

    /// <summary>A generation on the pipeline's own thread. Poll it (cheap: a few atomic
    /// reads, fine every frame), wait for it, cancel it. Disposing a running job cancels it
    /// and waits for it to stop.</summary>
    public sealed class Job : IDisposable
    {
        private readonly JobHandle handle;

        internal Job(JobHandle handle) { this.handle = handle; }

        public Progress Poll()
        {
            var raw = new RawJobProgress();
            Native.sdrt_job_progress_init(ref raw);
            SdrtException.Check(Native.sdrt_job_poll(handle, ref raw));
            return new Progress { State = (JobState)raw.State, Step = raw.Step, TotalSteps = raw.TotalSteps, PreviewStep = raw.PreviewStep };
        }

        /// <summary>Cancels it, queued or running; returns at once. Any thread.</summary>
        public void Cancel() { SdrtException.Check(Native.sdrt_job_cancel(handle)); }

        /// <summary>Waits at most timeoutMs (Library.WaitForever: until it ends); true when it has ended.</summary>
        public bool Wait(uint timeoutMs = Library.WaitForever)
        {
            int status = Native.sdrt_job_wait(handle, timeoutMs);
            if (status == (int)Status.Timeout) return false;
            SdrtException.Check(status);
            return true;
        }

        /// <summary>The images of a finished job, handed over once; a cancelled or failed job
        /// throws its error.</summary>
        public Image[] TakeImages()
        {
            var raw = new IntPtr[64];
            UIntPtr count;
            SdrtException.Check(Native.sdrt_job_take_images(handle, raw, (UIntPtr)(ulong)raw.Length, out count));
            var images = new Image[(int)count];
            for (int i = 0; i < images.Length; i++) images[i] = new Image(new ImageHandle(raw[i]));
            return images;
        }

        /// <summary>A copy of the newest preview of image index (GenerateOptions.PreviewEvery).</summary>
        public Image CopyPreview(uint index = 0)
        {
            ImageHandle preview;
            SdrtException.Check(Native.sdrt_job_copy_preview(handle, index, out preview));
            return new Image(preview);
        }

        public void Dispose() { handle.Dispose(); }
    }

    /// <summary>A loaded model. Thread-safe: generations from several threads run in turn.</summary>
    public sealed class Pipeline : IDisposable
    {
        private readonly PipelineHandle handle;

        // Static, so they outlive every call; each call passes its own state as user data.
        private static readonly RawProgressCallback progressTrampoline = OnProgress;
        private static readonly RawLogCallback loadLogTrampoline = OnLoadLog;

        private Pipeline(PipelineHandle handle) { this.handle = handle; }

        /// <summary>Loads a diffusers ONNX model directory; null: the model built into sdrt.</summary>
        public static Pipeline Load(string modelDir, LoadOptions options = null)
        {
            Library.CheckAbi();
            options = options ?? new LoadOptions();
            var raw = new RawLoadOptions();
            SdrtException.Check(Native.sdrt_load_options_init_sized(ref raw, (UIntPtr)Marshal.SizeOf(typeof(RawLoadOptions))));
            raw.ProviderPolicy = (int)options.ProviderPolicy;
            raw.IntraOpThreads = options.IntraOpThreads;
            raw.GraphOptimizationLevel = options.GraphOptimizationLevel;
            raw.LowMemory = options.LowMemory ? 1u : 0u;
            var state = new CallState { Log = options.OnLog };
            GCHandle stateHandle = GCHandle.Alloc(state);
            try
            {
                using (var scope = new CallScope())
                {
                    raw.OrtLibraryPath = scope.String(options.OrtLibraryPath);
                    raw.OptimizedModelCache = scope.String(options.OptimizedModelCache);
                    var providers = new List<RawExecutionProvider>();
                    foreach (ExecutionProvider provider in options.Providers)
                    {
                        var pairs = new List<RawKeyValue>();
                        foreach (KeyValuePair<string, string> option in provider.Options)
                            pairs.Add(new RawKeyValue { Key = scope.String(option.Key), Value = scope.String(option.Value) });
                        var rawProvider = new RawExecutionProvider();
                        Native.sdrt_execution_provider_init(ref rawProvider);
                        rawProvider.Kind = (int)provider.Kind;
                        rawProvider.DeviceId = provider.DeviceId;
                        rawProvider.OptionCount = (uint)pairs.Count;
                        rawProvider.Options = scope.Array(pairs);
                        providers.Add(rawProvider);
                    }
                    raw.Providers = scope.Array(providers);
                    raw.ProviderCount = (UIntPtr)(ulong)providers.Count;
                    if (options.OnLog != null)
                    {
                        raw.LogCallback = Marshal.GetFunctionPointerForDelegate(loadLogTrampoline);
                        raw.LogUserData = GCHandle.ToIntPtr(stateHandle);
                    }
                    PipelineHandle pipeline;
                    int status = Native.sdrt_pipeline_load(Utf8.Bytes(modelDir), ref raw, out pipeline);
                    state.RethrowIfCaught();
                    SdrtException.Check(status);
                    return new Pipeline(pipeline);
                }
            }
            finally
            {
                stateHandle.Free();
            }
        }

        public uint DefaultWidth { get { uint w, h; Native.sdrt_pipeline_default_size(handle, out w, out h); return w; } }
        public uint DefaultHeight { get { uint w, h; Native.sdrt_pipeline_default_size(handle, out w, out h); return h; } }
        public uint RecommendedSteps { get { uint s; float g; Native.sdrt_pipeline_recommended_settings(handle, out s, out g); return s; } }
        public float RecommendedGuidance { get { uint s; float g; Native.sdrt_pipeline_recommended_settings(handle, out s, out g); return g; } }

        /// <summary>One image, on this thread. onProgress(step, totalSteps) runs here; false
        /// cancels, and an exception it throws stops the generation and is rethrown here.</summary>
        public Image Generate(GenerateOptions options, Func<uint, uint, bool> onProgress = null)
        {
            if (options.BatchSize > 1) throw new ArgumentException("Generate makes one image; use GenerateBatch", "options");
            return GenerateBatch(options, onProgress)[0];
        }

        /// <summary>options.BatchSize images in one pass; image i has seed Seed + i.</summary>
        public Image[] GenerateBatch(GenerateOptions options, Func<uint, uint, bool> onProgress = null)
        {
            var state = new CallState { Progress = onProgress };
            GCHandle stateHandle = GCHandle.Alloc(state);
            try
            {
                using (var scope = new CallScope())
                {
                    RawGenerateParams raw = ToRaw(options, scope);
                    if (onProgress != null)
                    {
                        raw.ProgressCallback = Marshal.GetFunctionPointerForDelegate(progressTrampoline);
                        raw.ProgressUserData = GCHandle.ToIntPtr(stateHandle);
                    }
                    var images = new IntPtr[Math.Max(1u, options.BatchSize)];
                    int status = Native.sdrt_pipeline_generate_batch(handle, ref raw, images, (UIntPtr)(ulong)images.Length);
                    state.RethrowIfCaught();
                    SdrtException.Check(status);
                    var result = new Image[images.Length];
                    for (int i = 0; i < images.Length; i++) result[i] = new Image(new ImageHandle(images[i]));
                    return result;
                }
            }
            finally
            {
                stateHandle.Free();
            }
        }

        /// <summary>Queues a generation on the pipeline's thread and returns at once; poll the Job.</summary>
        public Job Submit(GenerateOptions options)
        {
            using (var scope = new CallScope())
            {
                RawGenerateParams raw = ToRaw(options, scope);
                JobHandle job;
                SdrtException.Check(Native.sdrt_pipeline_submit(handle, ref raw, out job));
                return new Job(job);
            }
        }

        /// <summary>A job awaited: progress reported as the steps advance (through the caller's
        /// SynchronizationContext when the IProgress is a Progress&lt;T&gt;), cancellation through
        /// the token (the task then ends as cancelled).</summary>
        public Task<Image[]> GenerateAsync(GenerateOptions options, IProgress<Progress> progress = null,
                                           CancellationToken cancellationToken = default(CancellationToken))
        {
            var completion = new TaskCompletionSource<Image[]>(TaskCreationOptions.RunContinuationsAsynchronously);
            Job job;
            try
            {
                cancellationToken.ThrowIfCancellationRequested();
                job = Submit(options);
            }
            catch (OperationCanceledException)
            {
                completion.SetCanceled();
                return completion.Task;
            }
            catch (Exception e)
            {
                completion.SetException(e);
                return completion.Task;
            }
            // The job runs on sdrt's thread; this one only waits for it, reports and ends the task.
            Task.Factory.StartNew(() =>
            {
                try
                {
                    using (job)
                    using (cancellationToken.Register(() => job.Cancel()))
                    {
                        uint reported = uint.MaxValue;
                        for (;;)
                        {
                            bool ended = job.Wait(20);
                            Progress now = job.Poll();
                            if (progress != null && (now.Step != reported || ended))
                            {
                                reported = now.Step;
                                progress.Report(now);
                            }
                            if (ended) break;
                        }
                        if (job.Poll().State == JobState.Cancelled && cancellationToken.IsCancellationRequested)
                            completion.SetCanceled();
                        else
                            completion.SetResult(job.TakeImages());
                    }
                }
                catch (Exception e)
                {
                    completion.TrySetException(e);
                }
            }, CancellationToken.None, TaskCreationOptions.LongRunning, TaskScheduler.Default);
            return completion.Task;
        }

        /// <summary>Cancels the blocking generations running or waiting on this pipeline (not its jobs).</summary>
        public void Cancel() { SdrtException.Check(Native.sdrt_pipeline_cancel(handle)); }

        /// <summary>Releases the graphs that can be loaded again, such as the VAE encoder.</summary>
        public void Trim() { SdrtException.Check(Native.sdrt_pipeline_trim(handle)); }

        public void Dispose() { handle.Dispose(); }

        private RawGenerateParams ToRaw(GenerateOptions options, CallScope scope)
        {
            if (options == null) throw new ArgumentNullException("options");
            var raw = new RawGenerateParams();
            // Sized: the library writes exactly this binding's struct, whatever its own size.
            SdrtException.Check(Native.sdrt_generate_params_init_sized(ref raw, (UIntPtr)Marshal.SizeOf(typeof(RawGenerateParams))));
            raw.Width = options.Width;
            raw.Height = options.Height;
            raw.Steps = options.Steps != 0 ? options.Steps : RecommendedSteps;
            raw.GuidanceScale = options.GuidanceScale ?? RecommendedGuidance;
            raw.Seed = options.Seed;
            raw.Strength = options.Strength;
            raw.GuidanceRescale = options.GuidanceRescale;
            raw.Scheduler = (int)options.Scheduler;
            raw.SigmaSchedule = (int)options.SigmaSchedule;
            raw.Rng = (int)options.Rng;
            raw.PromptSyntax = (int)options.PromptSyntax;
            raw.BatchSize = options.BatchSize;
            raw.ClipSkip = options.ClipSkip;
            raw.PreserveUnmasked = options.PreserveUnmasked ? 1u : 0u;
            raw.PreviewEvery = options.PreviewEvery;
            raw.PreviewKind = (int)options.PreviewKind;
            raw.VaeTiling = (int)options.VaeTiling;
            raw.VaeTileSize = options.VaeTileSize;
            raw.Prompt = scope.String(options.Prompt);
            raw.NegativePrompt = scope.String(options.NegativePrompt);
            if (options.InitialNoise != null)
            {
                raw.InitialNoise = scope.Pin(options.InitialNoise);
                raw.InitialNoiseLen = (UIntPtr)(ulong)options.InitialNoise.Length;
            }
            // The images' handles stay valid for the call: their owners hold them.
            raw.InitImage = options.InitImage != null ? options.InitImage.Handle.DangerousGetHandle() : IntPtr.Zero;
            raw.MaskImage = options.MaskImage != null ? options.MaskImage.Handle.DangerousGetHandle() : IntPtr.Zero;
            if (options.Loras != null && options.Loras.Count > 0)
            {
                var handles = new IntPtr[options.Loras.Count];
                var strengths = new float[options.Loras.Count];
                for (int i = 0; i < handles.Length; i++)
                {
                    if (options.Loras[i].Lora == null) throw new ArgumentNullException("options.Loras[" + i + "].Lora");
                    handles[i] = options.Loras[i].Lora.Handle.DangerousGetHandle();
                    strengths[i] = options.Loras[i].Strength;
                }
                raw.Loras = scope.Pin(handles);
                raw.LoraStrengths = scope.Pin(strengths);
                raw.LoraCount = (UIntPtr)(ulong)handles.Length;
            }
            raw.LoraDir = scope.String(options.LoraDir);
            if (options.Embeddings != null && options.Embeddings.Count > 0)
            {
                var embeddings = new IntPtr[options.Embeddings.Count];
                for (int i = 0; i < embeddings.Length; i++)
                {
                    if (options.Embeddings[i] == null) throw new ArgumentNullException("options.Embeddings[" + i + "]");
                    embeddings[i] = options.Embeddings[i].Handle.DangerousGetHandle();
                }
                raw.Embeddings = scope.Pin(embeddings);
                raw.EmbeddingCount = (UIntPtr)(ulong)embeddings.Length;
            }
            return raw;
        }

        /// <summary>What one native call's callbacks need, and the first exception they threw.</summary>
        private sealed class CallState
        {
            public Func<uint, uint, bool> Progress;
            public Action<LogLevel, string> Log;
            private ExceptionDispatchInfo caught;

            public void Catch(Exception e)
            {
                if (caught == null) caught = ExceptionDispatchInfo.Capture(e);
            }

            public void RethrowIfCaught()
            {
                if (caught != null) caught.Throw();
            }
        }

        [MonoPInvokeCallback(typeof(RawProgressCallback))]
        private static int OnProgress(IntPtr userData, uint step, uint totalSteps)
        {
            var state = (CallState)GCHandle.FromIntPtr(userData).Target;
            try
            {
                return state.Progress(step, totalSteps) ? 1 : 0;
            }
            catch (Exception e)
            {
                state.Catch(e);
                return 0;  // stop the generation; the caller rethrows
            }
        }

        [MonoPInvokeCallback(typeof(RawLogCallback))]
        private static void OnLoadLog(IntPtr userData, int level, IntPtr message)
        {
            var state = (CallState)GCHandle.FromIntPtr(userData).Target;
            try
            {
                state.Log((LogLevel)level, Utf8.FromStatic(message));
            }
            catch (Exception e)
            {
                state.Catch(e);
            }
        }
    }
}
