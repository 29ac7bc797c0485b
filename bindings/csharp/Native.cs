// The C ABI as P/Invoke declarations: one to one with include/sdrt.h, nothing else.
// Strings go in as NUL-terminated UTF-8 byte arrays (the marshaller's own string conversion
// is ANSI on Windows) and static `const char*` results come back as IntPtr, never freed.
// No C bool crosses the boundary: flags are uint.
using System;
using System.Runtime.CompilerServices;
using System.Runtime.InteropServices;

// The binding's test checks the raw structs against the sizes the library reports.
[assembly: InternalsVisibleTo("BindingTest")]

namespace Sdrt
{
    [UnmanagedFunctionPointer(CallingConvention.Cdecl)]
    internal delegate int RawProgressCallback(IntPtr userData, uint step, uint totalSteps);

    [UnmanagedFunctionPointer(CallingConvention.Cdecl)]
    internal delegate int RawPreviewCallback(IntPtr userData, uint step, uint totalSteps, uint imageIndex, IntPtr preview);

    [UnmanagedFunctionPointer(CallingConvention.Cdecl)]
    internal delegate void RawLogCallback(IntPtr userData, int level, IntPtr message);

    [StructLayout(LayoutKind.Sequential)]
    internal struct RawGenerateParams
    {
        public uint StructSize;
        public uint Width;
        public uint Height;
        public uint Steps;
        public ulong Seed;
        public double Strength;
        public float GuidanceScale;
        public float GuidanceRescale;
        public int Scheduler;
        public int Rng;
        public int SigmaSchedule;
        public int PromptSyntax;
        public uint BatchSize;
        public uint ClipSkip;
        public uint PreserveUnmasked;
        public uint PreviewEvery;
        public int PreviewKind;
        public uint Reserved;
        public IntPtr Prompt;
        public IntPtr NegativePrompt;
        public IntPtr InitialNoise;
        public UIntPtr InitialNoiseLen;
        public IntPtr InitImage;
        public IntPtr MaskImage;
        public IntPtr ProgressCallback;
        public IntPtr ProgressUserData;
        public IntPtr PreviewCallback;
        public IntPtr PreviewUserData;
        // Appended in 0.2.
        public IntPtr Loras;
        public IntPtr LoraStrengths;
        public UIntPtr LoraCount;
        public IntPtr LoraDir;
        public IntPtr Embeddings;
        public UIntPtr EmbeddingCount;
        // Appended in 0.3.
        public int VaeTiling;
        public uint VaeTileSize;
    }

    [StructLayout(LayoutKind.Sequential)]
    internal struct RawLoadOptions
    {
        public uint StructSize;
        public int ProviderPolicy;
        public int IntraOpThreads;
        public int GraphOptimizationLevel;
        public uint LowMemory;
        public uint Reserved;
        public IntPtr OrtLibraryPath;
        public IntPtr Providers;
        public UIntPtr ProviderCount;
        public IntPtr LogCallback;
        public IntPtr LogUserData;
        public IntPtr OptimizedModelCache; // since 0.4
    }

    [StructLayout(LayoutKind.Sequential)]
    internal struct RawExecutionProvider
    {
        public uint StructSize;
        public int Kind;
        public int DeviceId;
        public uint OptionCount;
        public IntPtr Options;
    }

    [StructLayout(LayoutKind.Sequential)]
    internal struct RawKeyValue
    {
        public IntPtr Key;
        public IntPtr Value;
    }

    [StructLayout(LayoutKind.Sequential)]
    internal struct RawJobProgress
    {
        public uint StructSize;
        public int State;
        public uint Step;
        public uint TotalSteps;
        public uint PreviewStep;
    }

    internal static class Native
    {
        // "sdrt" finds libsdrt.so, libsdrt.dylib and sdrt.dll.
        private const string Library = "sdrt";
        private const CallingConvention Cdecl = CallingConvention.Cdecl;

        [DllImport(Library, CallingConvention = Cdecl)] public static extern uint sdrt_abi_version();
        [DllImport(Library, CallingConvention = Cdecl)] public static extern IntPtr sdrt_version();
        [DllImport(Library, CallingConvention = Cdecl)] public static extern IntPtr sdrt_status_str(int status);
        [DllImport(Library, CallingConvention = Cdecl)] public static extern UIntPtr sdrt_last_error_message(byte[] buffer, UIntPtr bufferLen);
        [DllImport(Library, CallingConvention = Cdecl)] public static extern int sdrt_set_log_callback(RawLogCallback callback, IntPtr userData, int minLevel);
        [DllImport(Library, CallingConvention = Cdecl)] public static extern int sdrt_runtime_init(byte[] ortLibraryPath, uint sharedThreads);
        [DllImport(Library, CallingConvention = Cdecl)] public static extern int sdrt_provider_available(int kind, out uint available);
        [DllImport(Library, CallingConvention = Cdecl)] public static extern int sdrt_sampler_from_name(byte[] name, out int scheduler, out int sigmas);
        [DllImport(Library, CallingConvention = Cdecl)] public static extern int sdrt_rng_from_name(byte[] name, out int rng);
        [DllImport(Library, CallingConvention = Cdecl)] public static extern IntPtr sdrt_scheduler_name(int scheduler);

        [DllImport(Library, CallingConvention = Cdecl)] public static extern int sdrt_load_options_init_sized(ref RawLoadOptions options, UIntPtr size);
        [DllImport(Library, CallingConvention = Cdecl)] public static extern void sdrt_execution_provider_init(ref RawExecutionProvider provider);
        [DllImport(Library, CallingConvention = Cdecl)] public static extern int sdrt_generate_params_init_sized(ref RawGenerateParams parameters, UIntPtr size);
        [DllImport(Library, CallingConvention = Cdecl)] public static extern void sdrt_job_progress_init(ref RawJobProgress progress);

        [DllImport(Library, CallingConvention = Cdecl)] public static extern int sdrt_pipeline_load(byte[] modelDir, ref RawLoadOptions options, out PipelineHandle pipeline);
        [DllImport(Library, CallingConvention = Cdecl)] public static extern void sdrt_pipeline_free(IntPtr pipeline);
        [DllImport(Library, CallingConvention = Cdecl)] public static extern int sdrt_pipeline_default_size(PipelineHandle pipeline, out uint width, out uint height);
        [DllImport(Library, CallingConvention = Cdecl)] public static extern int sdrt_pipeline_recommended_settings(PipelineHandle pipeline, out uint steps, out float guidanceScale);
        [DllImport(Library, CallingConvention = Cdecl)] public static extern int sdrt_pipeline_generate_batch(PipelineHandle pipeline, ref RawGenerateParams parameters, [Out] IntPtr[] images, UIntPtr capacity);
        [DllImport(Library, CallingConvention = Cdecl)] public static extern int sdrt_pipeline_submit(PipelineHandle pipeline, ref RawGenerateParams parameters, out JobHandle job);
        [DllImport(Library, CallingConvention = Cdecl)] public static extern int sdrt_pipeline_cancel(PipelineHandle pipeline);
        [DllImport(Library, CallingConvention = Cdecl)] public static extern int sdrt_pipeline_trim(PipelineHandle pipeline);

        [DllImport(Library, CallingConvention = Cdecl)] public static extern int sdrt_job_poll(JobHandle job, ref RawJobProgress progress);
        [DllImport(Library, CallingConvention = Cdecl)] public static extern int sdrt_job_wait(JobHandle job, uint timeoutMs);
        [DllImport(Library, CallingConvention = Cdecl)] public static extern int sdrt_job_cancel(JobHandle job);
        [DllImport(Library, CallingConvention = Cdecl)] public static extern int sdrt_job_take_images(JobHandle job, [Out] IntPtr[] images, UIntPtr capacity, out UIntPtr count);
        [DllImport(Library, CallingConvention = Cdecl)] public static extern int sdrt_job_copy_preview(JobHandle job, uint imageIndex, out ImageHandle preview);
        [DllImport(Library, CallingConvention = Cdecl)] public static extern void sdrt_job_free(IntPtr job);

        [DllImport(Library, CallingConvention = Cdecl)] public static extern int sdrt_image_load(byte[] path, out ImageHandle image);
        [DllImport(Library, CallingConvention = Cdecl)] public static extern int sdrt_image_save_png(ImageHandle image, byte[] path);
        [DllImport(Library, CallingConvention = Cdecl)] public static extern uint sdrt_image_width(ImageHandle image);
        [DllImport(Library, CallingConvention = Cdecl)] public static extern uint sdrt_image_height(ImageHandle image);
        [DllImport(Library, CallingConvention = Cdecl)] public static extern uint sdrt_image_width(IntPtr image);
        [DllImport(Library, CallingConvention = Cdecl)] public static extern uint sdrt_image_height(IntPtr image);
        [DllImport(Library, CallingConvention = Cdecl)] public static extern int sdrt_image_copy_pixels(ImageHandle image, int format, uint flipVertical, byte[] dst, UIntPtr dstLen, UIntPtr dstStride);
        [DllImport(Library, CallingConvention = Cdecl)] public static extern int sdrt_image_copy_pixels(IntPtr image, int format, uint flipVertical, byte[] dst, UIntPtr dstLen, UIntPtr dstStride);
        [DllImport(Library, CallingConvention = Cdecl)] public static extern int sdrt_image_from_pixels(uint width, uint height, int format, uint flipVertical, byte[] pixels, UIntPtr pixelsLen, UIntPtr stride, out ImageHandle image);
        [DllImport(Library, CallingConvention = Cdecl)] public static extern void sdrt_image_free(IntPtr image);

        [DllImport(Library, CallingConvention = Cdecl)] public static extern int sdrt_lora_load(byte[] path, out LoraHandle lora);
        [DllImport(Library, CallingConvention = Cdecl)] public static extern int sdrt_lora_load_from_memory(byte[] name, byte[] bytes, UIntPtr len, out LoraHandle lora);
        [DllImport(Library, CallingConvention = Cdecl)] public static extern IntPtr sdrt_lora_name(LoraHandle lora);
        [DllImport(Library, CallingConvention = Cdecl)] public static extern void sdrt_lora_free(IntPtr lora);
        [DllImport(Library, CallingConvention = Cdecl)] public static extern int sdrt_embedding_load(byte[] path, byte[] token, out EmbeddingHandle embedding);
        [DllImport(Library, CallingConvention = Cdecl)] public static extern IntPtr sdrt_embedding_token(EmbeddingHandle embedding);
        [DllImport(Library, CallingConvention = Cdecl)] public static extern void sdrt_embedding_free(IntPtr embedding);
    }

    internal sealed class PipelineHandle : SafeHandle
    {
        public PipelineHandle() : base(IntPtr.Zero, true) { }
        public override bool IsInvalid { get { return handle == IntPtr.Zero; } }
        protected override bool ReleaseHandle() { Native.sdrt_pipeline_free(handle); return true; }
    }

    internal sealed class JobHandle : SafeHandle
    {
        public JobHandle() : base(IntPtr.Zero, true) { }
        public override bool IsInvalid { get { return handle == IntPtr.Zero; } }
        protected override bool ReleaseHandle() { Native.sdrt_job_free(handle); return true; }
    }

    internal sealed class ImageHandle : SafeHandle
    {
        public ImageHandle() : base(IntPtr.Zero, true) { }
        public ImageHandle(IntPtr raw) : base(IntPtr.Zero, true) { SetHandle(raw); }
        public override bool IsInvalid { get { return handle == IntPtr.Zero; } }
        protected override bool ReleaseHandle() { Native.sdrt_image_free(handle); return true; }
    }

    internal sealed class LoraHandle : SafeHandle
    {
        public LoraHandle() : base(IntPtr.Zero, true) { }
        public override bool IsInvalid { get { return handle == IntPtr.Zero; } }
        protected override bool ReleaseHandle() { Native.sdrt_lora_free(handle); return true; }
    }

    internal sealed class EmbeddingHandle : SafeHandle
    {
        public EmbeddingHandle() : base(IntPtr.Zero, true) { }
        public override bool IsInvalid { get { return handle == IntPtr.Zero; } }
        protected override bool ReleaseHandle() { Native.sdrt_embedding_free(handle); return true; }
    }
}
