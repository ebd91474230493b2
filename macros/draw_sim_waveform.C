// Draw one simulated waveform with its true electron arrivals (primaries and secondaries).
//
//   root -l -b -q 'macros/draw_sim_waveform.C("runs/quickstart/sim.root", 0, "waveform.png")'
//
// Reads the tree written by `ccframe simulate` (see data/README.md): waveform[N] in mV,
// electron_time_ns[n_electrons] in ns after the track crossing, electron_primary, and
// pretrigger_ns / sampling_ghz to place the arrivals on the sample axis.
#include "ccframe_macro.h"

#include <TCanvas.h>
#include <TFile.h>
#include <TGraph.h>
#include <TLegend.h>
#include <TLeaf.h>
#include <TTree.h>

#include <cstdio>
#include <vector>

int draw_sim_waveform(const char *file_name = "sim.root", Long64_t entry = 0,
                      const char *output = "sim_waveform.png", const char *tree_name = "sim")
{
   const char *macro = "draw_sim_waveform";
   TFile *file = nullptr;
   TTree *tree = ccframe_macro::open_tree(macro, file_name, tree_name, file);
   if (!tree || !ccframe_macro::check_entry(macro, tree, entry) ||
       !ccframe_macro::require_branches(macro, tree, file_name,
                                        {"waveform", "n_electrons", "pretrigger_ns",
                                         "sampling_ghz", "electron_time_ns", "electron_primary"}))
      return 1;
   TLeaf *wave_leaf = tree->GetLeaf("waveform");
   const int n_samples = wave_leaf->GetLenStatic();
   std::vector<float> wave(n_samples);
   int n_electrons = 0;
   double pretrigger_ns = 0, sampling_ghz = 0;
   tree->SetBranchAddress("waveform", wave.data());
   tree->SetBranchAddress("n_electrons", &n_electrons);
   tree->SetBranchAddress("pretrigger_ns", &pretrigger_ns);
   tree->SetBranchAddress("sampling_ghz", &sampling_ghz);
   tree->GetEntry(entry);  // first the counter, to size the electron arrays
   std::vector<double> time_ns(n_electrons > 0 ? n_electrons : 1);
   bool *primary = new bool[n_electrons > 0 ? n_electrons : 1];
   tree->SetBranchAddress("electron_time_ns", time_ns.data());
   tree->SetBranchAddress("electron_primary", primary);
   tree->GetEntry(entry);

   TGraph wave_graph(n_samples);
   float top = 0;
   for (int i = 0; i < n_samples; ++i) {
      wave_graph.SetPoint(i, i / sampling_ghz, wave[i]);
      if (wave[i] > top)
         top = wave[i];
   }
   TGraph primaries, secondaries;
   for (int j = 0; j < n_electrons; ++j) {
      TGraph &g = primary[j] ? primaries : secondaries;
      g.SetPoint(g.GetN(), time_ns[j] + pretrigger_ns, -2.0 - (primary[j] ? 0.0 : 1.0));
   }
   TCanvas canvas("c", "waveform", 1200, 500);
   wave_graph.SetTitle(Form("%s entry %lld (simulation);window time [ns];amplitude [mV]",
                            file_name, entry));
   wave_graph.SetLineColor(kBlack);
   wave_graph.Draw("AL");
   wave_graph.GetYaxis()->SetRangeUser(-4.5, top * 1.05 + 1);
   primaries.SetMarkerStyle(23);
   primaries.SetMarkerColor(kRed + 1);
   secondaries.SetMarkerStyle(22);
   secondaries.SetMarkerColor(kAzure + 2);
   if (primaries.GetN())
      primaries.Draw("P SAME");
   if (secondaries.GetN())
      secondaries.Draw("P SAME");
   TLegend legend(0.70, 0.75, 0.89, 0.89);
   legend.AddEntry(&wave_graph, "waveform", "l");
   legend.AddEntry(&primaries, "true primary electrons", "p");
   legend.AddEntry(&secondaries, "true secondary electrons", "p");
   legend.Draw();
   canvas.SaveAs(output);
   std::printf("entry %lld: %d samples, %d electrons, drawn to %s\n", entry, n_samples,
               n_electrons, output);
   delete[] primary;
   file->Close();
   return 0;
}
