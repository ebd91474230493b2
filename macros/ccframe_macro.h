// Helpers shared by ccframe's ROOT macros: output names, opening a tree, checking an entry and
// branches. Each prints a one-line error prefixed by the macro's name and reports failure, so a
// macro returns 1 without drawing anything.
#pragma once

#include <TFile.h>
#include <TLeaf.h>
#include <TString.h>
#include <TTree.h>

#include <cstdio>
#include <initializer_list>
#include <vector>

namespace ccframe_macro {

// The files to write for `output`: itself when it ends in .png or .pdf, both formats when it
// has no extension; any other extension is an error (empty result).
inline std::vector<TString> output_targets(const char *macro, const char *output)
{
   TString out(output);
   if (out.EndsWith(".png") || out.EndsWith(".pdf"))
      return {out};
   if (!out.Contains(".") || out.Last('/') > out.Last('.'))
      return {out + ".png", out + ".pdf"};
   std::fprintf(stderr, "%s: output %s: use a .png or .pdf name (or no extension for both)\n",
                macro, output);
   return {};
}

// Open `file_name` for reading and get its tree `tree_name`; nullptr after an error. The file
// stays open (it owns the tree) until `file` is closed or deleted.
inline TTree *open_tree(const char *macro, const char *file_name, const char *tree_name,
                        TFile *&file)
{
   file = TFile::Open(file_name, "READ");
   if (!file || file->IsZombie()) {
      std::fprintf(stderr, "%s: cannot open %s\n", macro, file_name);
      return nullptr;
   }
   TTree *tree = nullptr;
   file->GetObject(tree_name, tree);
   if (!tree)
      std::fprintf(stderr, "%s: no tree '%s' in %s\n", macro, tree_name, file_name);
   return tree;
}

// Whether `entry` is one of the tree's entries.
inline bool check_entry(const char *macro, TTree *tree, Long64_t entry)
{
   if (entry >= 0 && entry < tree->GetEntries())
      return true;
   std::fprintf(stderr, "%s: entry %lld outside [0, %lld)\n", macro, entry, tree->GetEntries());
   return false;
}

// Whether the tree has every named branch (the first missing one is reported).
inline bool require_branches(const char *macro, TTree *tree, const char *where,
                             std::initializer_list<const char *> names)
{
   for (const char *name : names) {
      if (!tree->GetLeaf(name)) {
         std::fprintf(stderr, "%s: no branch '%s' in %s\n", macro, name, where);
         return false;
      }
   }
   return true;
}

} // namespace ccframe_macro
