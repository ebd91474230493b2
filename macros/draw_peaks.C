// Draw the peak candidates of one waveform from ccframe's ML predictions: classifier score vs
// time of every candidate (accepted filled, rejected open, coloured by truth label when the file
// has it), the score distribution of the waveform's candidates, and, given the simulated input,
// the waveform itself with the accepted peaks marked.
//
//   root -l -b -q 'macros/draw_peaks.C("runs/quickstart/predictions.root", 0, "peaks.png", "runs/quickstart/sim.root")'
//
// entry is the entry of the `predictions` tree (written by the ML stage of `ccframe run` or by
// `ccframe infer`). sim_file (optional) is the simulated input (tree `sim`: waveform[N] in mV,
// sampling_ghz); its entry is the predictions' `entry` branch, not the predictions entry. The
// output's extension picks the format: .png or .pdf; a name without extension writes both.
// The threshold is not stored in the file: it is bracketed by the highest rejected and the
// lowest accepted score of the whole file (a candidate is accepted when score > threshold).
#include "ccframe_macro.h"

#include <TAxis.h>
#include <TCanvas.h>
#include <TFile.h>
#include <TGraph.h>
#include <TH1D.h>
#include <TLeaf.h>
#include <TLegend.h>
#include <TLine.h>
#include <TPad.h>
#include <TPaveText.h>
#include <TROOT.h>
#include <TString.h>
#include <TStyle.h>
#include <TSystem.h>
#include <TTree.h>

#include <algorithm>
#include <cmath>
#include <cstdio>
#include <memory>
#include <vector>

int draw_peaks(const char *file_name = "predictions.root", Long64_t entry = 0,
               const char *output = "peaks.png", const char *sim_file = "",
               const char *tree_name = "predictions", const char *sim_tree_name = "sim")
{
   const char *macro = "draw_peaks";
   std::vector<TString> targets = ccframe_macro::output_targets(macro, output);
   if (targets.empty())
      return 1;
   TFile *file = nullptr;
   TTree *tree = ccframe_macro::open_tree(macro, file_name, tree_name, file);
   if (!tree || !ccframe_macro::check_entry(macro, tree, entry) ||
       !ccframe_macro::require_branches(macro, tree, Form("%s:%s", file_name, tree_name),
                                        {"entry", "n_candidates", "candidate_sample",
                                         "candidate_time_ns", "candidate_score",
                                         "candidate_accepted"}))
      return 1;
   TLeaf *sample_leaf = tree->GetLeaf("candidate_sample");
   TLeaf *time_leaf = tree->GetLeaf("candidate_time_ns");
   TLeaf *score_leaf = tree->GetLeaf("candidate_score");
   TLeaf *accepted_leaf = tree->GetLeaf("candidate_accepted");
   TLeaf *label_leaf = tree->GetLeaf("candidate_label");
   if (!label_leaf)
      std::printf("draw_peaks: note: no branch 'candidate_label' (a file from ccframe infer?): "
                  "candidates are not coloured by truth\n");

   // The threshold bracket, from the scores of the whole file.
   tree->SetBranchStatus("*", false);
   for (const char *name : {"n_candidates", "candidate_score", "candidate_accepted"})
      tree->SetBranchStatus(name, true);
   double max_rejected = -1, min_accepted = 2;
   for (Long64_t i = 0; i < tree->GetEntries(); ++i) {
      tree->GetEntry(i);
      for (int j = 0; j < score_leaf->GetLen(); ++j) {
         const double s = score_leaf->GetValue(j);
         if (accepted_leaf->GetValue(j) != 0)
            min_accepted = std::min(min_accepted, s);
         else
            max_rejected = std::max(max_rejected, s);
      }
   }
   const bool have_threshold = max_rejected >= 0 && min_accepted <= 1 && max_rejected < min_accepted;
   const double threshold = have_threshold ? 0.5 * (max_rejected + min_accepted) : 0;

   tree->SetBranchStatus("*", true);
   if (tree->GetEntry(entry) <= 0) {
      std::fprintf(stderr, "draw_peaks: cannot read entry %lld of %s\n", entry, file_name);
      return 1;
   }
   auto value = [&](const char *name, double fallback) {
      TLeaf *l = tree->GetLeaf(name);
      return l ? l->GetValue() : fallback;
   };
   const Long64_t source_entry = static_cast<Long64_t>(value("entry", -1));
   const int file_index = static_cast<int>(value("file_index", 0));
   const int n = score_leaf->GetLen();
   std::vector<int> sample(n), label(n, -1);
   std::vector<double> time(n), score(n);
   std::vector<bool> accepted(n);
   int n_accepted = 0;
   for (int j = 0; j < n; ++j) {
      sample[j] = static_cast<int>(sample_leaf->GetValue(j));
      time[j] = time_leaf->GetValue(j);
      score[j] = score_leaf->GetValue(j);
      accepted[j] = accepted_leaf->GetValue(j) != 0;
      n_accepted += accepted[j];
      if (label_leaf)
         label[j] = static_cast<int>(label_leaf->GetValue(j));
   }

   // The simulated waveform, when asked for.
   const bool with_sim = sim_file && sim_file[0];
   std::vector<double> wave;
   double sampling_ghz = 0, pretrigger_ns = 0;
   std::vector<double> true_primary, true_secondary;
   bool have_electrons = false;
   if (with_sim) {
      if (file_index != 0)
         std::printf("draw_peaks: note: this waveform is from input file #%d of the run; %s "
                     "must be that file\n",
                     file_index, sim_file);
      TFile *sim_raw = nullptr;
      TTree *sim_tree = ccframe_macro::open_tree(macro, sim_file, sim_tree_name, sim_raw);
      std::unique_ptr<TFile> sim(sim_raw);
      if (!sim_tree)
         return 1;
      if (source_entry < 0 || source_entry >= sim_tree->GetEntries()) {
         std::fprintf(stderr,
                      "draw_peaks: predictions entry %lld is input entry %lld, outside [0, "
                      "%lld) of %s\n",
                      entry, source_entry, sim_tree->GetEntries(), sim_file);
         return 1;
      }
      if (!ccframe_macro::require_branches(macro, sim_tree,
                                           Form("%s:%s", sim_file, sim_tree_name),
                                           {"waveform", "sampling_ghz"}))
         return 1;
      TLeaf *wave_leaf = sim_tree->GetLeaf("waveform");
      TLeaf *rate_leaf = sim_tree->GetLeaf("sampling_ghz");
      sim_tree->GetEntry(source_entry);
      TLeaf *sim_event = sim_tree->GetLeaf("event_id");
      TLeaf *pred_event = tree->GetLeaf("event_id");
      if (sim_event && pred_event && sim_event->GetValue() != pred_event->GetValue()) {
         std::fprintf(stderr,
                      "draw_peaks: event_id %.0f in %s entry %lld differs from %.0f in the "
                      "predictions: not the input of this waveform\n",
                      sim_event->GetValue(), sim_file, source_entry, pred_event->GetValue());
         return 1;
      }
      sampling_ghz = rate_leaf->GetValue();
      wave.resize(wave_leaf->GetLen());
      for (size_t i = 0; i < wave.size(); ++i)
         wave[i] = wave_leaf->GetValue(i);
      TLeaf *e_time = sim_tree->GetLeaf("electron_time_ns");
      TLeaf *e_primary = sim_tree->GetLeaf("electron_primary");
      TLeaf *pretrigger = sim_tree->GetLeaf("pretrigger_ns");
      if (e_time && e_primary && pretrigger) {
         have_electrons = true;
         pretrigger_ns = pretrigger->GetValue();
         for (int k = 0; k < e_time->GetLen(); ++k)
            (e_primary->GetValue(k) != 0 ? true_primary : true_secondary)
               .push_back(e_time->GetValue(k) + pretrigger_ns);
      }
      for (int j = 0; j < n; ++j) {
         if (sample[j] < 0 || sample[j] >= static_cast<int>(wave.size())) {
            std::fprintf(stderr, "draw_peaks: candidate sample %d outside the %zu samples of %s\n",
                         sample[j], wave.size(), sim_file);
            return 1;
         }
      }
   }

   gROOT->SetBatch(true);
   gStyle->SetOptStat(0);
   gStyle->SetTitleFontSize(0.05);
   const int colour_noise = kGray + 2, colour_primary = kRed + 1, colour_secondary = kAzure + 2;
   auto colour = [&](int l) {
      return l == 1 ? colour_primary : l == 2 ? colour_secondary : l == 0 ? colour_noise : kBlack;
   };
   double t_max = 0;
   for (double t : time)
      t_max = std::max(t_max, t);
   t_max = with_sim ? wave.size() / sampling_ghz : std::max(100.0, std::ceil(t_max / 100) * 100);

   TCanvas canvas("c", "peaks", 1500, with_sim ? 950 : 600);
   const double split_x = 0.75;
   TPad left_top("left_top", "", 0, 0.5, split_x, 1);
   TPad left_bottom("left_bottom", "", 0, 0, split_x, with_sim ? 0.5 : 1);
   TPad right_top("right_top", "", split_x, 0.55, 1, 1);
   TPad right_bottom("right_bottom", "", split_x, 0, 1, 0.55);
   for (TPad *p : {&left_top, &left_bottom, &right_top, &right_bottom}) {
      p->SetLeftMargin(0.12);
      p->SetRightMargin(0.03);
   }
   left_top.SetLeftMargin(0.07);
   left_bottom.SetLeftMargin(0.07);
   right_bottom.SetLeftMargin(0.17);
   right_bottom.SetBottomMargin(0.12);
   if (with_sim)
      left_top.Draw();
   left_bottom.Draw();
   right_top.Draw();
   right_bottom.Draw();
   const TString where = TString::Format("%s entry %lld", gSystem->BaseName(file_name), entry);

   // Score vs time: one graph per (label, accepted) so that the legend can show each kind.
   std::vector<std::unique_ptr<TGraph>> keep;
   auto make_graph = [&](int l, bool acc) {
      keep.emplace_back(new TGraph());
      TGraph *g = keep.back().get();
      g->SetMarkerStyle(acc ? 20 : 24);
      g->SetMarkerSize(1.1);
      g->SetMarkerColor(colour(l));
      g->SetLineColor(colour(l));
      return g;
   };
   TGraph *score_graph[4][2];
   for (int l = 0; l < 4; ++l)
      for (int a = 0; a < 2; ++a)
         score_graph[l][a] = make_graph(l < 3 ? l : -1, a == 1);
   for (int j = 0; j < n; ++j) {
      TGraph *g = score_graph[label[j] >= 0 && label[j] < 3 ? label[j] : 3][accepted[j] ? 1 : 0];
      g->SetPoint(g->GetN(), time[j], score[j]);
   }
   left_bottom.cd();
   left_bottom.SetBottomMargin(with_sim ? 0.12 : 0.10);
   left_bottom.SetTopMargin(with_sim ? 0.03 : 0.08);
   TH1D frame("frame",
              TString::Format("%s;window time [ns];classifier score", with_sim ? "" : where.Data()),
              100, 0, t_max);
   frame.SetMinimum(-0.03);
   frame.SetMaximum(1.32);
   frame.GetYaxis()->SetNdivisions(506);
   frame.GetYaxis()->SetTitleOffset(0.8);
   frame.GetXaxis()->SetTitleSize(0.045);
   frame.GetYaxis()->SetTitleSize(0.045);
   frame.Draw("AXIS");
   TLine threshold_line(0, threshold, t_max, threshold);
   threshold_line.SetLineStyle(2);
   threshold_line.SetLineColor(kBlack);
   if (have_threshold)
      threshold_line.Draw();
   for (int l = 0; l < 4; ++l)
      for (int a = 0; a < 2; ++a)
         if (score_graph[l][a]->GetN())
            score_graph[l][a]->Draw("P SAME");
   TLegend legend(0.09, with_sim ? 0.80 : 0.76, 0.96, with_sim ? 0.95 : 0.90);
   legend.SetNColumns(3);
   legend.SetTextSize(with_sim ? 0.05 : 0.04);
   legend.SetBorderSize(0);
   legend.SetFillStyle(0);
   TGraph *key_filled = make_graph(-1, true), *key_open = make_graph(-1, false);
   if (label_leaf) {
      legend.AddEntry(make_graph(0, true), "noise", "p");
      legend.AddEntry(make_graph(1, true), "primary electron", "p");
      legend.AddEntry(make_graph(2, true), "secondary electron", "p");
   }
   legend.AddEntry(key_filled, "accepted (filled)", "p");
   legend.AddEntry(key_open, "rejected (open)", "p");
   if (have_threshold)
      legend.AddEntry(&threshold_line, TString::Format("threshold #approx %.4g", threshold), "l");
   legend.Draw();

   // The waveform with the accepted peaks and, if in the file, the true electron arrivals.
   TGraph wave_graph;
   std::vector<std::unique_ptr<TGraph>> peak_graphs;
   TGraph primaries, secondaries;
   if (with_sim) {
      left_top.cd();
      left_top.SetBottomMargin(0.03);
      float top = 0, bottom = 0;
      for (size_t i = 0; i < wave.size(); ++i) {
         wave_graph.SetPoint(i, i / sampling_ghz, wave[i]);
         top = std::max<float>(top, wave[i]);
         bottom = std::min<float>(bottom, wave[i]);
      }
      TH1D *wave_frame = new TH1D("wave_frame",
                                  TString::Format("%s (input entry %lld of %s);;amplitude [mV]",
                                                  where.Data(), source_entry,
                                                  gSystem->BaseName(sim_file)),
                                  100, 0, t_max);
      wave_frame->SetDirectory(nullptr);
      const double span = top - std::min(bottom, -4.5f);
      wave_frame->SetMinimum(std::min(bottom, -4.5f) - 0.02 * span);
      wave_frame->SetMaximum(top + 0.25 * span);
      wave_frame->GetXaxis()->SetLabelSize(0);
      wave_frame->GetYaxis()->SetTitleOffset(0.8);
      wave_frame->GetYaxis()->SetTitleSize(0.045);
      wave_frame->Draw("AXIS");
      wave_graph.SetLineColor(kBlack);
      wave_graph.Draw("L SAME");
      for (int l = 0; l < 4; ++l) {
         peak_graphs.emplace_back(new TGraph());
         TGraph *g = peak_graphs.back().get();
         g->SetMarkerStyle(23);
         g->SetMarkerSize(1.2);
         g->SetMarkerColor(colour(l < 3 ? l : -1));
      }
      for (int j = 0; j < n; ++j) {
         if (!accepted[j])
            continue;
         TGraph *g = peak_graphs[label[j] >= 0 && label[j] < 3 ? label[j] : 3].get();
         g->SetPoint(g->GetN(), time[j], wave[sample[j]] + 0.04 * span);
      }
      for (auto &g : peak_graphs)
         if (g->GetN())
            g->Draw("P SAME");
      for (double t : true_primary)
         primaries.SetPoint(primaries.GetN(), t, -2.0);
      for (double t : true_secondary)
         secondaries.SetPoint(secondaries.GetN(), t, -3.5);
      primaries.SetMarkerStyle(22);
      primaries.SetMarkerColor(colour_primary);
      secondaries.SetMarkerStyle(22);
      secondaries.SetMarkerColor(colour_secondary);
      if (primaries.GetN())
         primaries.Draw("P SAME");
      if (secondaries.GetN())
         secondaries.Draw("P SAME");
      TLegend *wave_legend = new TLegend(0.08, 0.80, 0.96, 0.90);
      wave_legend->SetNColumns(3);
      wave_legend->SetTextSize(0.05);
      wave_legend->SetBorderSize(0);
      wave_legend->SetFillStyle(0);
      wave_legend->AddEntry(&wave_graph, "waveform", "l");
      TGraph *key_peak = make_graph(-1, true);
      key_peak->SetMarkerStyle(23);
      wave_legend->AddEntry(key_peak, label_leaf ? "accepted peak (colour: truth label)"
                                                 : "accepted peak",
                            "p");
      if (have_electrons) {
         TGraph *key_true = make_graph(-1, true);
         key_true->SetMarkerStyle(22);
         wave_legend->AddEntry(key_true, "true electrons (primary, secondary)", "p");
      }
      wave_legend->Draw();
   }

   // Summary numbers of the waveform.
   right_top.cd();
   TPaveText info(0.04, 0.04, 0.96, 0.96, "NDC");
   info.SetFillColor(0);
   info.SetBorderSize(0);
   info.SetTextAlign(12);
   info.SetTextFont(42);
   info.AddText(gSystem->BaseName(file_name));
   info.AddText(TString::Format("entry %lld (input file #%d entry %lld)", entry, file_index,
                                source_entry));
   info.AddText(TString::Format("candidates: %d, accepted: %d", n, n_accepted));
   info.AddText(TString::Format("N_{ML} = %.2f", value("n_clusters_ml", NAN)));
   if (tree->GetLeaf("n_clusters_traditional"))
      info.AddText(
         TString::Format("N_{traditional} = %.0f", value("n_clusters_traditional", NAN)));
   if (tree->GetLeaf("n_clusters_true"))
      info.AddText(TString::Format("N_{true} = %.0f clusters, %.0f electrons",
                                   value("n_clusters_true", NAN),
                                   value("n_electrons_true", NAN)));
   else
      info.AddText("no truth in this file");
   if (have_threshold)
      info.AddText(TString::Format("threshold in [%.4f, %.4f)", max_rejected, min_accepted));
   if (with_sim)
      info.AddText(TString::Format("waveform: %s entry %lld", gSystem->BaseName(sim_file),
                                   source_entry));
   info.Draw();

   // Threshold-free view: the score distribution of this waveform's candidates per class.
   right_bottom.cd();
   std::vector<std::unique_ptr<TH1D>> dist;
   const char *class_names[] = {"noise", "primary", "secondary", "all candidates"};
   double peak = 0;
   for (int l = 0; l < 4; ++l) {
      dist.emplace_back(new TH1D(TString::Format("score_%d", l),
                                 "scores of this waveform's candidates;classifier score;candidates", 20, 0, 1));
      dist.back()->SetDirectory(nullptr);
      dist.back()->SetLineColor(colour(l < 3 ? l : -1));
      dist.back()->SetLineWidth(2);
      for (TAxis *axis : {dist.back()->GetXaxis(), dist.back()->GetYaxis()}) {
         axis->SetLabelSize(0.05);
         axis->SetTitleSize(0.055);
      }
   }
   for (int j = 0; j < n; ++j)
      dist[label_leaf && label[j] >= 0 && label[j] < 3 ? label[j] : 3]->Fill(
         std::min(score[j], 0.999999));
   for (auto &h : dist)
      peak = std::max(peak, h->GetMaximum());
   TH1D *first = nullptr;
   TLegend dist_legend(0.45, 0.68, 0.97, 0.88);
   dist_legend.SetTextSize(0.055);
   dist_legend.SetBorderSize(0);
   dist_legend.SetFillStyle(0);
   for (int l = 0; l < 4; ++l) {
      if (dist[l]->GetEntries() == 0)
         continue;
      if (!first) {
         first = dist[l].get();
         first->SetMaximum(1.45 * peak);
         first->GetYaxis()->SetTitleOffset(1.4);
         first->Draw("HIST");
      } else {
         dist[l]->Draw("HIST SAME");
      }
      dist_legend.AddEntry(dist[l].get(), class_names[l], "l");
   }
   TLine threshold_cut(threshold, 0, threshold, 1.1 * peak);
   threshold_cut.SetLineStyle(2);
   if (have_threshold && first)
      threshold_cut.Draw();
   dist_legend.Draw();

   for (const TString &t : targets)
      canvas.SaveAs(t);
   std::printf("draw_peaks: entry %lld (input entry %lld): %d candidates, %d accepted, "
               "N_ml %.2f, drawn to %s\n",
               entry, source_entry, n, n_accepted, value("n_clusters_ml", NAN), output);
   file->Close();
   return 0;
}
