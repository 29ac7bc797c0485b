// The C# binding (bindings/csharp) from C#, on Mono: constants against the header, struct
// sizes against the library, load failure, generate, callbacks that throw, jobs, async with
// progress and cancellation, pixel copies and disposal.
// Usage: mono BindingTest.exe include/sdrt.h MODEL_DIR
using System;
using System.Collections.Generic;
using System.IO;
using System.Runtime.InteropServices;
using System.Text.RegularExpressions;
using System.Threading;
using System.Threading.Tasks;
using Sdrt;

static class BindingTest
{
    static int failures;

    static void Check(bool condition, string what)
    {
        if (condition) return;
        Console.Error.WriteLine("check failed: " + what);
        failures++;
    }

    static void Throws<T>(Action action, string what, Func<T, bool> inspect = null) where T : Exception
    {
        try
        {
            action();
            Check(false, what + ": nothing thrown");
        }
        catch (T e)
        {
            Check(inspect == null || inspect(e), what + ": " + e.Message);
        }
        catch (Exception e)
        {
            Check(false, what + ": threw " + e.GetType().Name + ": " + e.Message);
        }
    }

    // SDRT_<GROUP>_<NAME> maps to enum <Group>, member <Name> in PascalCase; the longest group wins.
    static readonly KeyValuePair<string, Type>[] groups =
    {
        new KeyValuePair<string, Type>("PROVIDER_POLICY_", typeof(ProviderPolicy)),
        new KeyValuePair<string, Type>("PIXEL_FORMAT_", typeof(PixelFormat)),
        new KeyValuePair<string, Type>("VAE_TILING_", typeof(VaeTiling)),
        new KeyValuePair<string, Type>("SCHEDULER_", typeof(Scheduler)),
        new KeyValuePair<string, Type>("PROVIDER_", typeof(ProviderKind)),
        new KeyValuePair<string, Type>("PREVIEW_", typeof(PreviewKind)),
        new KeyValuePair<string, Type>("SIGMAS_", typeof(SigmaSchedule)),
        new KeyValuePair<string, Type>("PROMPT_", typeof(PromptSyntax)),
        new KeyValuePair<string, Type>("STATUS_", typeof(Status)),
        new KeyValuePair<string, Type>("JOB_", typeof(JobState)),
        new KeyValuePair<string, Type>("LOG_", typeof(LogLevel)),
        new KeyValuePair<string, Type>("RNG_", typeof(Rng)),
    };

    static string Pascal(string upper)
    {
        var result = "";
        foreach (string part in upper.Split('_'))
            result += part.Substring(0, 1) + part.Substring(1).ToLowerInvariant();
        return result;
    }

    static void TestConstants(string header)
    {
        var seen = new Dictionary<Type, int>();
        int constants = 0;
        foreach (string line in File.ReadAllLines(header))
        {
            Match define = Regex.Match(line, @"^#define SDRT_(\w+) (-?\d+)$");
            if (!define.Success) continue;
            string name = define.Groups[1].Value;
            long value = long.Parse(define.Groups[2].Value);
            if (name.StartsWith("VERSION_")) continue;
            constants++;
            if (name == "ABI_VERSION")
            {
                Check(value == Library.AbiVersion, "SDRT_ABI_VERSION " + value + " == Library.AbiVersion");
                continue;
            }
            Type group = null;
            string member = null;
            foreach (var candidate in groups)
            {
                if (!name.StartsWith(candidate.Key)) continue;
                group = candidate.Value;
                member = Pascal(name.Substring(candidate.Key.Length));
                break;
            }
            if (group == null)
            {
                Check(false, "SDRT_" + name + " belongs to no enum of the binding");
                continue;
            }
            seen[group] = (seen.ContainsKey(group) ? seen[group] : 0) + 1;
            Check(Enum.IsDefined(group, member), "SDRT_" + name + " is " + group.Name + "." + member);
            if (Enum.IsDefined(group, member))
                Check(Convert.ToInt64(Enum.Parse(group, member)) == value, group.Name + "." + member + " == " + value);
        }
        Check(constants >= 50, "the header's constants were found (" + constants + ")");
        foreach (var candidate in groups)
        {
            int inHeader = seen.ContainsKey(candidate.Value) ? seen[candidate.Value] : 0;
            Check(Enum.GetValues(candidate.Value).Length == inHeader, candidate.Value.Name + " has no member the header lacks");
        }
    }

    static void TestStructSizes()
    {
        var parameters = new RawGenerateParams();
        Check(Native.sdrt_generate_params_init_sized(ref parameters, (UIntPtr)Marshal.SizeOf(typeof(RawGenerateParams))) == 0,
            "sdrt_generate_params_init_sized");
        // The 0.3 layout (the library pins the same size); a binding that lags fails here.
        Check(Marshal.SizeOf(typeof(RawGenerateParams)) == 216, "sdrt_generate_params size");
        Check(parameters.StructSize == 216, "sdrt_generate_params struct_size");
        var load = new RawLoadOptions();
        Check(Native.sdrt_load_options_init_sized(ref load, (UIntPtr)Marshal.SizeOf(typeof(RawLoadOptions))) == 0,
            "sdrt_load_options_init_sized");
        // The 0.4 layout; a binding that lags fails here.
        Check(Marshal.SizeOf(typeof(RawLoadOptions)) == 72, "sdrt_load_options size");
        Check(load.StructSize == 72 && load.GraphOptimizationLevel == 3, "sdrt_load_options struct_size");
        var provider = new RawExecutionProvider();
        Native.sdrt_execution_provider_init(ref provider);
        Check(provider.StructSize == Marshal.SizeOf(typeof(RawExecutionProvider)), "sdrt_execution_provider size");
        var progress = new RawJobProgress();
        Native.sdrt_job_progress_init(ref progress);
        Check(progress.StructSize == Marshal.SizeOf(typeof(RawJobProgress)), "sdrt_job_progress size");
        // The defaults came through the right fields.
        Check(parameters.Steps == 25 && parameters.BatchSize == 1 && parameters.PreserveUnmasked == 1 &&
              Math.Abs(parameters.Strength - 0.8) < 1e-9, "sdrt_generate_params defaults");
        Check(load.GraphOptimizationLevel == 3, "sdrt_load_options defaults");
    }

    static GenerateOptions Small(uint steps, ulong seed)
    {
        return new GenerateOptions
        {
            Prompt = "a red circle on a blue background", Width = 64, Height = 64, Steps = steps,
            GuidanceScale = 7.5f, Seed = seed, Scheduler = Scheduler.Euler,
        };
    }

    static bool Same(byte[] a, byte[] b)
    {
        if (a.Length != b.Length) return false;
        for (int i = 0; i < a.Length; i++) if (a[i] != b[i]) return false;
        return true;
    }

    static void TestGenerate(Pipeline pipeline)
    {
        uint steps = 0, total = 0;
        byte[] blocking;
        using (Image image = pipeline.Generate(Small(3, 7), (step, all) => { steps++; total = all; return true; }))
        {
            Check(image.Width == 64 && image.Height == 64, "image size");
            blocking = image.ToBytes(PixelFormat.Rgb8);
            // Bottom-up RGBA: the first row is the last RGB row, opaque.
            byte[] flipped = image.ToBytes(PixelFormat.Rgba8, true);
            bool same = true;
            for (int x = 0; x < 64; x++)
                same &= flipped[x * 4] == blocking[63 * 192 + x * 3] && flipped[x * 4 + 2] == blocking[63 * 192 + x * 3 + 2] && flipped[x * 4 + 3] == 255;
            Check(same, "flipped RGBA copy");
            using (Image back = Image.FromPixels(64, 64, PixelFormat.Rgba8, flipped, 0, true))
                Check(Same(back.ToBytes(PixelFormat.Rgb8), blocking), "pixels round trip");
            Throws<SdrtException>(() => image.CopyTo(new byte[10], PixelFormat.Bgra8), "copy into a short buffer",
                e => e.Status == Status.InvalidArgument);
        }
        Check(steps == 3 && total == 3, "progress callback saw 3 of 3 steps");

        using (Job job = pipeline.Submit(Small(3, 7)))
        {
            while (!job.Poll().IsFinished) Thread.Sleep(1);
            Check(job.Wait(0), "finished job waits for nothing");
            Image[] images = job.TakeImages();
            Check(images.Length == 1 && Same(images[0].ToBytes(PixelFormat.Rgb8), blocking), "job draws the blocking call's image");
            foreach (Image image in images) image.Dispose();
        }

        var two = Small(2, 5);
        two.BatchSize = 2;
        Image[] batch = pipeline.GenerateBatch(two);
        Check(batch.Length == 2 && !Same(batch[0].ToBytes(), batch[1].ToBytes()), "batch of two different images");
        foreach (Image image in batch) image.Dispose();
    }

    static void TestLoras(Pipeline pipeline, string loraDir)
    {
        byte[] plain;
        using (Image image = pipeline.Generate(Small(3, 7))) plain = image.ToBytes(PixelFormat.Rgb8);
        byte[] merged;
        using (Lora lora = Lora.Load(Path.Combine(loraDir, "sd15_unet.safetensors")))
        {
            Check(lora.Name == "sd15_unet", "LoRA name");
            var options = Small(3, 7);
            options.Loras.Add(new LoraStrength(lora, 0.7f));
            using (Image image = pipeline.Generate(options)) merged = image.ToBytes(PixelFormat.Rgb8);
        }
        Check(!Same(merged, plain), "a LoRA changes the image");
        var tagged = Small(3, 7);
        tagged.Prompt += " <lora:sd15_unet:0.7>";
        tagged.LoraDir = loraDir;
        using (Image image = pipeline.Generate(tagged)) Check(Same(image.ToBytes(PixelFormat.Rgb8), merged), "a prompt tag = the handle");
        using (Image image = pipeline.Generate(Small(3, 7))) Check(Same(image.ToBytes(PixelFormat.Rgb8), plain), "no LoRA: the base image again");
        Throws<SdrtException>(() => Lora.FromMemory("junk", new byte[] { 1, 2, 3 }), "a LoRA that is not a .safetensors file",
            e => e.Status == Status.InvalidModel);

        string embeddings = Path.Combine(Path.GetDirectoryName(loraDir), "embeddings");
        var catPrompt = Small(3, 7);
        catPrompt.Prompt = "a sdrtcat on a blue background";
        byte[] withoutCat;
        using (Image image = pipeline.Generate(catPrompt)) withoutCat = image.ToBytes(PixelFormat.Rgb8);
        using (Embedding cat = Embedding.Load(Path.Combine(embeddings, "sdrtcat.safetensors")))
        {
            Check(cat.Token == "sdrtcat", "embedding token");
            catPrompt.Embeddings.Add(cat);
            using (Image image = pipeline.Generate(catPrompt)) Check(!Same(image.ToBytes(PixelFormat.Rgb8), withoutCat), "an embedding changes the image");
        }
    }

    static void TestCallbackExceptions(Pipeline pipeline)
    {
        uint calls = 0;
        Throws<InvalidOperationException>(() => pipeline.Generate(Small(5, 1), (step, all) =>
        {
            calls++;
            if (step == 2) throw new InvalidOperationException("thrown at step 2");
            return true;
        }), "the callback's own exception comes out of Generate", e => e.Message == "thrown at step 2");
        Check(calls == 2, "the generation stopped at the throw");
        Throws<SdrtException>(() => pipeline.Generate(Small(5, 1), (step, all) => step < 1), "false cancels",
            e => e.Status == Status.Cancelled);
        using (Image image = pipeline.Generate(Small(1, 1))) Check(image.Width == 64, "the pipeline works on");

        var options = new LoadOptions();
        options.OnLog = (level, message) => { throw new FormatException("from the log callback"); };
        options.Providers.Add(new ExecutionProvider { Kind = ProviderKind.Cuda });
        if (!Library.ProviderAvailable(ProviderKind.Cuda))
            Throws<FormatException>(() => Pipeline.Load(ModelDir, options).Dispose(), "a throwing load log callback");
    }

    static void TestAsync(Pipeline pipeline)
    {
        var reports = new List<Progress>();
        var progress = new SynchronousProgress(p => { lock (reports) reports.Add(p); });
        Task<Image[]> done = pipeline.GenerateAsync(Small(3, 7), progress);
        Image[] images = done.Result;
        Check(images.Length == 1 && images[0].Width == 64, "async generate");
        foreach (Image image in images) image.Dispose();
        lock (reports)
            Check(reports.Count > 0 && reports[reports.Count - 1].State == JobState.Done &&
                  reports[reports.Count - 1].Step == 3, "async progress ends at step 3 of 3, done");

        using (var cancel = new CancellationTokenSource())
        {
            var started = new ManualResetEventSlim();
            Task<Image[]> running = pipeline.GenerateAsync(Small(400, 1), new SynchronousProgress(p => { if (p.Step >= 1) started.Set(); }), cancel.Token);
            Check(started.Wait(60000), "the long job started");
            cancel.Cancel();
            try
            {
                running.Wait(60000);
                Check(false, "a cancelled task completed");
            }
            catch (AggregateException e)
            {
                Check(e.InnerException is OperationCanceledException, "cancelled task: " + e.InnerException.GetType().Name);
            }
            Check(running.IsCanceled, "the task ended as cancelled");
        }

        var bad = Small(1, 1);
        bad.Width = 72;
        Task<Image[]> failing = pipeline.GenerateAsync(bad);
        try
        {
            failing.Wait(60000);
            Check(false, "a failing job succeeded");
        }
        catch (AggregateException e)
        {
            Check(e.InnerException is SdrtException, "a failing job's task carries an SdrtException");
        }
    }

    // A second load of the model reads the optimised copies the first wrote: same image.
    static void TestOptimizedModelCache()
    {
        string cache = Path.Combine(Path.GetTempPath(), "sdrt-csharp-cache-" + Guid.NewGuid().ToString("N"));
        try
        {
            var images = new List<byte[]>();
            for (int i = 0; i < 2; i++)
            {
                var options = new LoadOptions { IntraOpThreads = 1, OptimizedModelCache = cache };
                using (Pipeline pipeline = Pipeline.Load(ModelDir, options))
                using (Image image = pipeline.Generate(Small(2, 5)))
                    images.Add(image.ToBytes(PixelFormat.Rgb8));
                Check(Directory.GetDirectories(cache).Length == 3, "a cache entry per graph");
            }
            Check(Same(images[0], images[1]), "the cached graphs draw the same image");
        }
        finally
        {
            if (Directory.Exists(cache)) Directory.Delete(cache, true);
        }
    }

    static void TestDisposal()
    {
        Pipeline pipeline = Pipeline.Load(ModelDir);
        Job running = pipeline.Submit(Small(400, 3));
        while (running.Poll().Step < 1) Thread.Sleep(1);
        running.Dispose();  // cancels and waits
        running.Dispose();  // twice is fine
        pipeline.Dispose();
        pipeline.Dispose();
        Throws<ObjectDisposedException>(() => pipeline.Generate(Small(1, 1)), "a disposed pipeline");
    }

    // Progress<T> posts to the thread pool; this reports on the waiting thread, in order.
    sealed class SynchronousProgress : IProgress<Progress>
    {
        readonly Action<Progress> report;
        public SynchronousProgress(Action<Progress> report) { this.report = report; }
        public void Report(Progress value) { report(value); }
    }

    static string ModelDir;

    static int Main(string[] args)
    {
        if (args.Length != 3)
        {
            Console.Error.WriteLine("usage: BindingTest.exe SDRT_H MODEL_DIR LORA_DIR");
            return 2;
        }
        ModelDir = args[1];
        Library.CheckAbi();
        TestConstants(args[0]);
        TestStructSizes();
        Throws<SdrtException>(() => Pipeline.Load("/nonexistent/model"), "loading a missing model",
            e => e.Status == Status.InvalidModel && e.Message.Contains("/nonexistent/model"));
        Throws<SdrtException>(() => { Scheduler s; SigmaSchedule g; Library.SamplerFromName("no such sampler", out s, out g); },
            "an unknown sampler", e => e.Status == Status.InvalidArgument);
        using (Pipeline pipeline = Pipeline.Load(ModelDir))
        {
            TestGenerate(pipeline);
            TestLoras(pipeline, args[2]);
            TestCallbackExceptions(pipeline);
            TestAsync(pipeline);
        }
        TestDisposal();
        TestOptimizedModelCache();
        if (failures > 0)
        {
            Console.Error.WriteLine("BindingTest: " + failures + " check(s) failed");
            return 1;
        }
        Console.WriteLine("BindingTest: all checks passed");
        return 0;
    }
}
