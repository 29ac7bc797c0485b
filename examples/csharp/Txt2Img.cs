// Txt2Img.cs: the C sample's core, through the C# binding (bindings/csharp).
//
//   mono Txt2Img.exe --prompt "a red circle on a blue background" --output out.png
//
// Takes the same core flags as examples/txt2img.c and draws the same image for them. Runs the
// generation as a job, polled as a game loop would, with Ctrl+C cancelling it.
using System;
using System.Globalization;
using System.Threading;
using Sdrt;

static class Txt2Img
{
    const string Usage =
        "usage: Txt2Img.exe [options]\n" +
        "  --model DIR  --prompt TEXT  --negative-prompt TEXT  --steps N  --guidance F\n" +
        "  --width W  --height H  --seed N  --scheduler NAME  --rng NAME  --output PATH  --quiet\n" +
        "(as in txt2img.c; without --model, the model built into sdrt)\n";

    static ulong WholeNumber(string flag, string text, ulong max)
    {
        ulong value;
        if (!ulong.TryParse(text, NumberStyles.None, CultureInfo.InvariantCulture, out value) || value > max)
            throw new ArgumentException(flag + " expects a whole number up to " + max + ", got \"" + text + "\"");
        return value;
    }

    static int Main(string[] args)
    {
        string model = null, output = "txt2img.png";
        bool quiet = false;
        var options = new GenerateOptions();
        try
        {
            for (int i = 0; i < args.Length; i++)
            {
                string flag = args[i];
                if (flag == "--help" || flag == "-h") { Console.Write(Usage); return 0; }
                if (flag == "--quiet") { quiet = true; continue; }
                if (i + 1 >= args.Length) throw new ArgumentException(flag + " needs a value");
                string value = args[++i];
                switch (flag)
                {
                    case "--model": model = value; break;
                    case "--prompt": options.Prompt = value; break;
                    case "--negative-prompt": options.NegativePrompt = value; break;
                    case "--output": output = value; break;
                    case "--steps": options.Steps = (uint)WholeNumber(flag, value, 1000); break;
                    case "--width": options.Width = (uint)WholeNumber(flag, value, 65535); break;
                    case "--height": options.Height = (uint)WholeNumber(flag, value, 65535); break;
                    case "--seed": options.Seed = WholeNumber(flag, value, ulong.MaxValue); break;
                    case "--guidance":
                        float guidance;
                        if (!float.TryParse(value, NumberStyles.Float, CultureInfo.InvariantCulture, out guidance))
                            throw new ArgumentException("--guidance expects a number, got \"" + value + "\"");
                        options.GuidanceScale = guidance;
                        break;
                    case "--scheduler":
                        Scheduler scheduler;
                        SigmaSchedule sigmas;
                        Library.SamplerFromName(value, out scheduler, out sigmas);
                        options.Scheduler = scheduler;
                        options.SigmaSchedule = sigmas;
                        break;
                    case "--rng": options.Rng = Library.RngFromName(value); break;
                    default: throw new ArgumentException("unknown option " + flag);
                }
            }
        }
        catch (ArgumentException e)
        {
            Console.Error.Write("Txt2Img: " + e.Message + "\n" + Usage);
            return 2;
        }
        catch (SdrtException e)
        {
            Console.Error.WriteLine("Txt2Img: " + e.Status + ": " + e.Message);
            return 2;
        }

        try
        {
            using (Pipeline pipeline = Pipeline.Load(model))
            using (Job job = pipeline.Submit(options))
            {
                Console.CancelKeyPress += (sender, e) => { e.Cancel = true; job.Cancel(); };
                // A game loop would do other work here and poll once per frame.
                Progress progress;
                uint shown = 0;
                while (!(progress = job.Poll()).IsFinished)
                {
                    if (!quiet && progress.Step != shown)
                    {
                        shown = progress.Step;
                        Console.Error.Write("\rstep " + progress.Step + "/" + progress.TotalSteps);
                    }
                    Thread.Sleep(16);
                }
                if (!quiet) Console.Error.WriteLine("\rstep " + progress.Step + "/" + progress.TotalSteps);
                Image[] images = job.TakeImages();  // throws the job's error, or Cancelled
                using (Image image = images[0])
                {
                    image.SavePng(output);
                    if (!quiet) Console.WriteLine("wrote {0} ({1}x{2}, seed {3})", output, image.Width, image.Height, options.Seed);
                }
            }
            return 0;
        }
        catch (SdrtException e)
        {
            Console.Error.WriteLine("Txt2Img: " + e.Status + ": " + e.Message);
            return 1;
        }
    }
}
