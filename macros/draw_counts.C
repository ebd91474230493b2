// Draw ccframe's cluster counts against the truth: (left) true vs ML count with the diagonal,
// (right) the relative residual (N - N_true) / N_true of the ML and the traditional count, each
// with a Gaussian fitted to its core (about +-2 sigma around the peak).
//
//   root -l -b -q 'macros/draw_counts.C("runs/quickstart/predictions.root", "counts.png", 2)'
//
// Reads the `predictions` tree written by the ML stage of `ccframe run`. split selects the
// waveforms: -1 all, 0 train, 1 validation, 2 test (default). The output's extension picks the
// format: .png or .pdf; a name without extension writes both. A file from `ccframe infer` has no
// truth: then only the distribution of the ML count is drawn, with a note.
#include "ccframe_macro.h"

#include <TCanvas.h>
#include <TF1.h>
#include <TFile.h>
#include <TH1D.h>
#include <TH2D.h>
#include <TLatex.h>
#include <TLeaf.h>
#include <TLegend.h>
#include <TLine.h>
#include <TROOT.h>
#include <TString.h>
#include <TStyle.h>
#include <TSystem.h>
#include <TTree.h>

#include <algorithm>
#include <cmath>
#include <cstdio>
#include <vector>

int draw_counts(const char *file_name = "predictions.root", const char *output = "counts.png",
                int split = 2, const char *tree_name = "predictions")
{
   const char *split_names[] = {"train", "validation", "test"};
   if (split < -1 || split > 2) {
      std::fprintf(stderr,
                   "draw_counts: split %d is not -1 (all), 0 (train), 1 (validation) or 2 (test)\n",
                   split);
      return 1;
   }
   // Output formats from the extension, checked before any work.
   const char *macro = "draw_counts";
   std::vector<TString> targets = ccframe_macro::output_targets(macro, output);
   if (targets.empty())
      return 1;
   TFile *file = nullptr;
   TTree *tree = ccframe_macro::open_tree(macro, file_name, tree_name, file);
   if (!tree ||
       !ccframe_macro::require_branches(macro, tree, Form("%s:%s", file_name, tree_name),
                                        {"n_clusters_ml"}))
      return 1;
   TLeaf *ml = tree->GetLeaf("n_clusters_ml");
   TLeaf *truth = tree->GetLeaf("n_clusters_true");
   TLeaf *trad = tree->GetLeaf("n_clusters_traditional");
   TLeaf *split_leaf = tree->GetLeaf("split");
   tree->SetBranchStatus("*", false);
   for (TLeaf *l : {ml, truth, trad, split_leaf})
      if (l)
         tree->SetBranchStatus(l->GetBranch()->GetName(), true);
   bool use_split = split >= 0;
   if (use_split && !split_leaf) {
      std::printf("draw_counts: note: no 'split' branch: split %d ignored, drawing all entries\n",
                  split);
      use_split = false;
   }
   const TString split_text = use_split ? TString::Format("%s split", split_names[split])
                                        : TString("all waveforms");

   std::vector<double> v_true, v_ml, v_trad;
   std::vector<double> all_ml, all_trad;
   for (Long64_t i = 0; i < tree->GetEntries(); ++i) {
      if (tree->GetEntry(i) <= 0) {
         std::fprintf(stderr, "draw_counts: cannot read entry %lld\n", i);
         return 1;
      }
      if (use_split && static_cast<int>(split_leaf->GetValue()) != split)
         continue;
      all_ml.push_back(ml->GetValue());
      if (trad)
         all_trad.push_back(trad->GetValue());
      if (truth && truth->GetValue() > 0) {
         v_true.push_back(truth->GetValue());
         v_ml.push_back(ml->GetValue());
         if (trad)
            v_trad.push_back(trad->GetValue());
      }
   }
   if (all_ml.empty()) {
      std::fprintf(stderr, "draw_counts: no waveforms in split %d of %s\n", split, file_name);
      return 1;
   }
   gROOT->SetBatch(true);
   gStyle->SetOptStat(0);
   gStyle->SetOptFit(0);
   gStyle->SetTitleFontSize(0.045);

   if (!truth || v_true.empty()) {
      std::printf("draw_counts: note: no %s: drawing the count distribution only\n",
                  truth ? "waveform with n_clusters_true > 0" : "truth (n_clusters_true)");
      const double top = std::max(*std::max_element(all_ml.begin(), all_ml.end()),
                                  all_trad.empty()
                                     ? 0.0
                                     : *std::max_element(all_trad.begin(), all_trad.end()));
      const int nbins = std::max(10, std::min(100, static_cast<int>(std::ceil(top)) + 2));
      TH1D h_ml("h_ml",
                TString::Format("%s (%s, no truth);ML number of clusters;waveforms", gSystem->BaseName(file_name),
                                split_text.Data()),
                nbins, -0.5, nbins - 0.5);
      TH1D h_trad("h_trad", "", nbins, -0.5, nbins - 0.5);
      for (double v : all_ml)
         h_ml.Fill(v);
      for (double v : all_trad)
         h_trad.Fill(v);
      TCanvas canvas("c", "counts", 900, 600);
      canvas.SetLeftMargin(0.12);
      h_ml.SetLineColor(kRed + 1);
      h_ml.SetLineWidth(2);
      h_trad.SetLineColor(kAzure + 2);
      h_trad.SetLineWidth(2);
      h_ml.SetMaximum(1.15 * std::max(h_ml.GetMaximum(), h_trad.GetMaximum()));
      h_ml.Draw("HIST");
      TLegend legend(0.60, 0.78, 0.89, 0.89);
      legend.AddEntry(&h_ml, TString::Format("ML (mean %.2f)", h_ml.GetMean()), "l");
      if (trad) {
         h_trad.Draw("HIST SAME");
         legend.AddEntry(&h_trad, TString::Format("traditional (mean %.2f)", h_trad.GetMean()),
                         "l");
      }
      legend.Draw();
      for (const TString &t : targets)
         canvas.SaveAs(t);
      std::printf("draw_counts: %zu waveforms (%s), no truth, drawn to %s\n", all_ml.size(),
                  split_text.Data(), output);
      file->Close();
      return 0;
   }

   // Left: true vs ML count, one bin per integer count.
   double top = *std::max_element(v_true.begin(), v_true.end());
   top = std::max(top, *std::max_element(v_ml.begin(), v_ml.end()));
   const int nbins = static_cast<int>(std::ceil(top * 1.05)) + 2;
   TH2D h2("h2",
           TString::Format("ML count vs truth (%s, %zu waveforms);true number of clusters;"
                           "ML number of clusters;waveforms",
                           split_text.Data(), v_true.size()),
           nbins, -0.5, nbins - 0.5, nbins, -0.5, nbins - 0.5);
   for (size_t k = 0; k < v_true.size(); ++k)
      h2.Fill(v_true[k], v_ml[k]);

   // Right: relative residuals; the range covers the central 99% of both, at least [-1, 1].
   std::vector<double> r_ml(v_true.size()), r_trad(v_trad.size());
   for (size_t k = 0; k < v_true.size(); ++k) {
      r_ml[k] = (v_ml[k] - v_true[k]) / v_true[k];
      if (trad)
         r_trad[k] = (v_trad[k] - v_true[k]) / v_true[k];
   }
   auto quantile = [](std::vector<double> v, double q) {
      std::sort(v.begin(), v.end());
      return v[static_cast<size_t>(q * (v.size() - 1))];
   };
   double lo = quantile(r_ml, 0.005), hi = quantile(r_ml, 0.995);
   if (trad) {
      lo = std::min(lo, quantile(r_trad, 0.005));
      hi = std::max(hi, quantile(r_trad, 0.995));
   }
   // Bins of 0.05 (0.1 with few waveforms) centred on 0: N == N_true, frequent for the integer
   // traditional count, falls in one bin.
   const double width = v_true.size() < 500 ? 0.1 : 0.05;
   const int below = static_cast<int>(std::ceil(std::max(1.0, -lo) / width - 0.5));
   const int above = static_cast<int>(std::ceil(std::max(1.0, hi) / width - 0.5));
   lo = -(below + 0.5) * width;
   hi = (above + 0.5) * width;
   const int rbins = below + above + 1;
   TH1D h_ml("h_ml",
             TString::Format("relative residual (%s);(N - N_{true}) / N_{true};waveforms",
                             split_text.Data()),
             rbins, lo, hi);
   TH1D h_trad("h_trad", "", rbins, lo, hi);
   for (double r : r_ml)
      h_ml.Fill(r);
   for (double r : r_trad)
      h_trad.Fill(r);

   // Gaussian core. Start values: the mean and width of the values after iterative clipping at
   // 2 sigma (width corrected for the clipping, as ccframe's core_sigma); then fit the
   // histogram in +-2 sigma of the last fit, a few times.
   auto fit_core = [](TH1D &h, const std::vector<double> &v, const char *name,
                      int colour) -> TF1 * {
      std::vector<double> sorted(v);
      std::sort(sorted.begin(), sorted.end());
      double mean = sorted[sorted.size() / 2], sigma = 0;
      for (double x : v)
         sigma += (x - mean) * (x - mean);
      sigma = std::sqrt(sigma / v.size());
      const double clip_factor = 0.7737413;  // std of a unit Gaussian truncated at +-2
      for (int it = 0; it < 10 && sigma > 0; ++it) {
         double n = 0, s = 0, s2 = 0;
         for (double x : v)
            if (std::fabs(x - mean) < 2 * sigma) {
               n += 1;
               s += x;
               s2 += x * x;
            }
         if (n < 2)
            break;
         mean = s / n;
         sigma = std::sqrt(std::max(0.0, s2 / n - mean * mean)) / clip_factor;
      }
      sigma = std::max(sigma, h.GetBinWidth(1));
      TF1 *f = new TF1(name, "gaus", h.GetXaxis()->GetXmin(), h.GetXaxis()->GetXmax());
      f->SetParameters(h.GetBinContent(h.FindBin(mean)), mean, sigma);
      // A fit that runs away (few entries, no core) keeps the last sensible parameters.
      const double start_mean = mean, start_sigma = sigma;
      double good[3] = {f->GetParameter(0), mean, sigma};
      for (int it = 0; it < 3; ++it) {
         const double a = mean - 2 * sigma, b = mean + 2 * sigma;
         if (h.Integral(h.FindBin(a), h.FindBin(b)) < 10)
            break;
         f->SetRange(a, b);
         if (h.Fit(f, "Q0R") != 0)
            break;
         mean = f->GetParameter(1);
         sigma = std::fabs(f->GetParameter(2));
         if (sigma > 2 * start_sigma || std::fabs(mean - start_mean) > 2 * start_sigma)
            break;
         good[0] = f->GetParameter(0);
         good[1] = mean;
         good[2] = sigma;
      }
      f->SetParameters(good[0], good[1], good[2]);
      f->SetRange(good[1] - 2 * good[2], good[1] + 2 * good[2]);
      f->SetLineColor(colour);
      f->SetLineWidth(3);
      f->SetLineStyle(2);
      f->SetNpx(400);
      return f;
   };
   h_ml.SetLineColor(kRed + 1);
   h_ml.SetLineWidth(2);
   h_trad.SetLineColor(kAzure + 2);
   h_trad.SetLineWidth(2);
   TF1 *f_ml = fit_core(h_ml, r_ml, "core_ml", kRed + 1);
   TF1 *f_trad = trad ? fit_core(h_trad, r_trad, "core_traditional", kAzure + 2) : nullptr;

   TCanvas canvas("c", "counts", 1400, 620);
   canvas.Divide(2, 1);
   TVirtualPad *left = canvas.cd(1);
   left->SetLeftMargin(0.12);
   left->SetRightMargin(0.15);
   left->SetBottomMargin(0.12);
   left->SetLogz();
   h2.GetYaxis()->SetTitleOffset(1.3);
   h2.GetZaxis()->SetTitleOffset(1.2);
   h2.SetMinimum(0.8);
   h2.Draw("COLZ");
   TLine diagonal(-0.5, -0.5, nbins - 0.5, nbins - 0.5);
   diagonal.SetLineColor(kGray + 2);
   diagonal.SetLineStyle(2);
   diagonal.SetLineWidth(2);
   diagonal.Draw();
   TLegend diag_legend(0.14, 0.82, 0.45, 0.88);
   diag_legend.SetBorderSize(0);
   diag_legend.SetFillStyle(0);
   diag_legend.AddEntry(&diagonal, "N_{ML} = N_{true}", "l");
   diag_legend.Draw();

   TVirtualPad *right = canvas.cd(2);
   right->SetLeftMargin(0.12);
   right->SetRightMargin(0.04);
   right->SetBottomMargin(0.12);
   h_ml.SetMaximum(1.35 * std::max(h_ml.GetMaximum(), h_trad.GetMaximum()));
   h_ml.GetYaxis()->SetTitleOffset(1.4);
   h_ml.Draw("HIST");
   if (trad)
      h_trad.Draw("HIST SAME");
   f_ml->Draw("SAME");
   if (f_trad)
      f_trad->Draw("SAME");
   TLine zero(0, 0, 0, h_ml.GetMaximum());
   zero.SetLineColor(kGray + 1);
   zero.SetLineStyle(3);
   zero.Draw();
   TLegend legend(0.43, 0.72, 0.95, 0.89);
   legend.SetTextSize(0.031);
   legend.SetBorderSize(0);
   legend.SetFillStyle(0);
   auto rms = [](const std::vector<double> &v) {
      double m = 0, s = 0;
      for (double x : v)
         m += x;
      m /= v.size();
      for (double x : v)
         s += (x - m) * (x - m);
      return std::sqrt(s / v.size());
   };
   legend.AddEntry(&h_ml, TString::Format("ML: fitted #sigma %.3f, RMS %.3f",
                                          f_ml->GetParameter(2), rms(r_ml)),
                   "l");
   if (f_trad)
      legend.AddEntry(&h_trad, TString::Format("traditional: fitted #sigma %.3f, RMS %.3f",
                                               f_trad->GetParameter(2), rms(r_trad)),
                      "l");
   legend.AddEntry(f_ml, "Gaussian fit to the core (#pm2#sigma)", "l");
   legend.Draw();
   for (const TString &t : targets)
      canvas.SaveAs(t);
   std::printf("draw_counts: %zu waveforms (%s), ML core sigma %.4f", v_true.size(),
               split_text.Data(), f_ml->GetParameter(2));
   if (f_trad)
      std::printf(", traditional core sigma %.4f", f_trad->GetParameter(2));
   std::printf(", drawn to %s\n", output);
   delete f_ml;
   delete f_trad;
   file->Close();
   return 0;
}
