// Print a summary of ccframe's ML predictions: mean counts, count bias and resolution against
// the truth, candidates and accepted peaks per waveform, and the classifier's confusion counts.
//
//   root -l -b -q 'macros/summary_predictions.C("runs/quickstart/predictions.root", 2)'
//
// Reads the `predictions` tree written by the ML stage of `ccframe run` (or by `ccframe infer`).
// split selects the waveforms: -1 all, 0 train, 1 validation, 2 test. The definitions follow
// ccframe's metrics.json (`count_test`, `classifier.test`): over waveforms with N_true > 0,
// relative bias = sum(N) / sum(N_true) - 1 and RMS resolution = standard deviation of
// (N - N_true) / N_true; TP/FP/TN/FN compare candidate_accepted with candidate_label > 0 (true
// electrons that no candidate came near are not counted). Files from `ccframe infer` lack the
// truth branches: what needs them is skipped with a note. One `key: value` line per number.
#include "ccframe_macro.h"

#include <TFile.h>
#include <TLeaf.h>
#include <TTree.h>

#include <cmath>
#include <cstdio>
#include <string>
#include <vector>

int summary_predictions(const char *file_name = "predictions.root", int split = -1,
                        const char *tree_name = "predictions")
{
   const char *split_names[] = {"train", "validation", "test"};
   if (split < -1 || split > 2) {
      std::fprintf(stderr,
                   "summary_predictions: split %d is not -1 (all), 0 (train), 1 (validation) or "
                   "2 (test)\n",
                   split);
      return 1;
   }
   TFile *file = nullptr;
   TTree *tree = ccframe_macro::open_tree("summary_predictions", file_name, tree_name, file);
   if (!tree)
      return 1;
   // TLeaf::GetValue converts whatever type the writer chose (int8, int64, float32, bool).
   std::vector<std::string> missing;
   auto leaf = [&](const char *name, bool required) -> TLeaf * {
      TLeaf *l = tree->GetLeaf(name);
      if (!l && required) {
         std::fprintf(stderr, "summary_predictions: no branch '%s' in %s:%s\n", name, file_name,
                      tree_name);
      } else if (!l) {
         missing.push_back(name);
      }
      return l;
   };
   TLeaf *ml = leaf("n_clusters_ml", true);
   TLeaf *peaks = leaf("n_peaks", true);
   TLeaf *n_cand = leaf("n_candidates", true);
   TLeaf *accepted = leaf("candidate_accepted", true);
   if (!ml || !peaks || !n_cand || !accepted)
      return 1;
   TLeaf *split_leaf = leaf("split", false);
   TLeaf *truth = leaf("n_clusters_true", false);
   TLeaf *trad = leaf("n_clusters_traditional", false);
   TLeaf *label = leaf("candidate_label", false);

   tree->SetBranchStatus("*", false);
   for (TLeaf *l : {ml, peaks, n_cand, accepted, split_leaf, truth, trad, label})
      if (l)
         tree->SetBranchStatus(l->GetBranch()->GetName(), true);

   const Long64_t entries = tree->GetEntries();
   std::printf("summary_predictions: %s:%s\n", file_name, tree_name);
   std::printf("entries: %lld\n", entries);
   for (const std::string &name : missing)
      std::printf("note: no branch '%s' (a file from ccframe infer?)\n", name.c_str());
   bool use_split = split >= 0;
   if (use_split && !split_leaf) {
      std::printf("note: no 'split' branch: split %d ignored, summarising all entries\n", split);
      use_split = false;
   }
   std::printf("split: %s\n", use_split ? split_names[split] : "all");

   Long64_t selected = 0, candidates = 0, n_peaks = 0, tp = 0, fp = 0, tn = 0, fn = 0;
   double sum_ml = 0, sum_trad = 0, sum_true = 0;
   std::vector<double> v_true, v_ml, v_trad;  // waveforms with N_true > 0
   for (Long64_t i = 0; i < entries; ++i) {
      if (tree->GetEntry(i) <= 0) {
         std::fprintf(stderr, "summary_predictions: cannot read entry %lld\n", i);
         return 1;
      }
      if (use_split && static_cast<int>(split_leaf->GetValue()) != split)
         continue;
      ++selected;
      sum_ml += ml->GetValue();
      n_peaks += static_cast<Long64_t>(peaks->GetValue());
      if (trad)
         sum_trad += trad->GetValue();
      if (truth) {
         const double t = truth->GetValue();
         sum_true += t;
         if (t > 0) {
            v_true.push_back(t);
            v_ml.push_back(ml->GetValue());
            if (trad)
               v_trad.push_back(trad->GetValue());
         }
      }
      const int n = accepted->GetLen();
      candidates += n;
      if (label) {
         for (int j = 0; j < n; ++j) {
            const bool acc = accepted->GetValue(j) != 0;
            const bool signal = label->GetValue(j) > 0;
            tp += acc && signal;
            fp += acc && !signal;
            tn += !acc && !signal;
            fn += !acc && signal;
         }
      }
   }
   if (selected == 0) {
      std::fprintf(stderr, "summary_predictions: no waveforms in split %d of %s\n", split,
                   file_name);
      return 1;
   }
   const double n_sel = static_cast<double>(selected);
   std::printf("waveforms: %lld\n", selected);
   if (truth)
      std::printf("mean_n_clusters_true: %.6f\n", sum_true / n_sel);
   std::printf("mean_n_clusters_ml: %.6f\n", sum_ml / n_sel);
   if (trad)
      std::printf("mean_n_clusters_traditional: %.6f\n", sum_trad / n_sel);

   auto resolution = [&](const char *name, const std::vector<double> &pred) {
      double sum_pred = 0, sum_t = 0, mean_rel = 0;
      std::vector<double> rel(pred.size());
      for (size_t k = 0; k < pred.size(); ++k) {
         sum_pred += pred[k];
         sum_t += v_true[k];
         rel[k] = (pred[k] - v_true[k]) / v_true[k];
         mean_rel += rel[k];
      }
      mean_rel /= rel.size();
      double var = 0;
      for (double r : rel)
         var += (r - mean_rel) * (r - mean_rel);
      std::printf("%s_relative_bias: %+.6f\n", name, sum_pred / sum_t - 1.0);
      std::printf("%s_resolution_rms: %.6f\n", name, std::sqrt(var / rel.size()));
   };
   if (!truth) {
      std::printf("note: no truth: relative bias and resolution skipped\n");
   } else if (v_true.empty()) {
      std::printf("note: no waveform with n_clusters_true > 0: relative bias and resolution "
                  "skipped\n");
   } else {
      std::printf("waveforms_with_true_clusters: %zu\n", v_true.size());
      resolution("ml", v_ml);
      if (trad)
         resolution("traditional", v_trad);
   }
   std::printf("candidates_per_waveform: %.6f\n", candidates / n_sel);
   std::printf("accepted_peaks_per_waveform: %.6f\n", n_peaks / n_sel);
   if (!label) {
      std::printf("note: no candidate_label: classifier counts skipped\n");
   } else {
      std::printf("classifier_TP: %lld\n", tp);
      std::printf("classifier_FP: %lld\n", fp);
      std::printf("classifier_TN: %lld\n", tn);
      std::printf("classifier_FN: %lld\n", fn);
      if (tp + fp > 0)
         std::printf("classifier_precision: %.6f\n", double(tp) / (tp + fp));
      if (tp + fn > 0)
         std::printf("classifier_recall: %.6f\n", double(tp) / (tp + fn));
   }
   file->Close();
   return 0;
}
