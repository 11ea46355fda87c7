package openapigen

import (
	"bufio"
	"fmt"
	"go/ast"
	"go/parser"
	"go/token"
	"os"
	"path"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
)

// source reads what reflection cannot see from the module's Go files: the
// comments of types and fields (the document's descriptions) and the string
// constants of a named type (its enum).
type source struct {
	root, module string
	pkgs         map[string]*pkgDoc // by import path
}

type pkgDoc struct {
	types  map[string]string            // type name -> doc comment
	fields map[string]map[string]string // type name -> field name -> doc comment
	enums  map[string][]string          // type name -> its string constants, in declaration order
}

// newSource finds the module that holds dir (its go.mod).
func newSource(dir string) (*source, error) {
	dir, err := filepath.Abs(dir)
	if err != nil {
		return nil, err
	}
	for {
		f, err := os.Open(filepath.Join(dir, "go.mod"))
		if err == nil {
			defer f.Close()
			sc := bufio.NewScanner(f)
			for sc.Scan() {
				if m, ok := strings.CutPrefix(strings.TrimSpace(sc.Text()), "module "); ok {
					return &source{root: dir, module: strings.Trim(strings.TrimSpace(m), `"`), pkgs: map[string]*pkgDoc{}}, nil
				}
			}
			return nil, fmt.Errorf("%s/go.mod names no module", dir)
		}
		parent := filepath.Dir(dir)
		if parent == dir {
			return nil, fmt.Errorf("no go.mod above the working directory")
		}
		dir = parent
	}
}

// pkg returns the docs of the package at import path p; a package outside
// the module has none.
func (s *source) pkg(p string) (*pkgDoc, error) {
	if d, ok := s.pkgs[p]; ok {
		return d, nil
	}
	d := &pkgDoc{types: map[string]string{}, fields: map[string]map[string]string{}, enums: map[string][]string{}}
	s.pkgs[p] = d
	rel, ok := strings.CutPrefix(p, s.module)
	if !ok || (rel != "" && rel[0] != '/') {
		return d, nil
	}
	// An external test package (x_test) lives in x's directory.
	name := path.Base(p)
	dir := filepath.Join(s.root, filepath.FromSlash(strings.TrimSuffix(rel, "_test")))
	entries, err := os.ReadDir(dir)
	if err != nil {
		return nil, fmt.Errorf("source of %s: %w", p, err)
	}
	fset := token.NewFileSet()
	for _, e := range entries { // sorted by name: the first declaration wins
		if e.IsDir() || !strings.HasSuffix(e.Name(), ".go") {
			continue
		}
		f, err := parser.ParseFile(fset, filepath.Join(dir, e.Name()), nil, parser.ParseComments|parser.SkipObjectResolution)
		if err != nil {
			return nil, fmt.Errorf("source of %s: %w", p, err)
		}
		if f.Name.Name == name {
			d.read(f)
		}
	}
	return d, nil
}

func (d *pkgDoc) read(f *ast.File) {
	for _, decl := range f.Decls {
		g, ok := decl.(*ast.GenDecl)
		if !ok {
			continue
		}
		switch g.Tok {
		case token.TYPE:
			for _, spec := range g.Specs {
				ts := spec.(*ast.TypeSpec)
				if _, seen := d.types[ts.Name.Name]; seen {
					continue
				}
				doc := ts.Doc
				if doc == nil && len(g.Specs) == 1 {
					doc = g.Doc
				}
				d.types[ts.Name.Name] = text(doc)
				if st, ok := ts.Type.(*ast.StructType); ok {
					fields := map[string]string{}
					for _, f := range st.Fields.List {
						doc := f.Doc
						if doc == nil {
							doc = f.Comment
						}
						for _, n := range f.Names {
							fields[n.Name] = text(doc)
						}
					}
					d.fields[ts.Name.Name] = fields
				}
			}
		case token.CONST:
			for _, spec := range g.Specs {
				vs := spec.(*ast.ValueSpec)
				typ, ok := vs.Type.(*ast.Ident)
				if !ok {
					continue
				}
				for _, v := range vs.Values {
					if lit, ok := v.(*ast.BasicLit); ok && lit.Kind == token.STRING {
						if s, err := strconv.Unquote(lit.Value); err == nil {
							d.enums[typ.Name] = append(d.enums[typ.Name], s)
						}
					}
				}
			}
		}
	}
}

// text is a comment as a description: its paragraphs, each on one line.
func text(c *ast.CommentGroup) string {
	if c == nil {
		return ""
	}
	var paras []string
	for _, p := range strings.Split(strings.TrimSpace(c.Text()), "\n\n") {
		paras = append(paras, strings.Join(strings.Fields(p), " "))
	}
	return strings.Join(paras, "\n\n")
}

// typeDoc is a type's comment as its component's description: the Go name
// it starts with (Go style: "revisionView is …") is the component's, the
// names of its fields are their JSON names.
func typeDoc(doc, goName, name string, fields []jsonField) string {
	if rest, ok := strings.CutPrefix(doc, goName+" "); ok {
		return name + " " + jsonNames(rest, fields)
	}
	return jsonNames(doc, fields)
}

var word = regexp.MustCompile(`\b[A-Z][A-Za-z0-9]*\b`)

// jsonNames writes the Go names of a struct's fields in a comment of the
// struct or its fields as the JSON names a client sees ("MinReplicas 0 is
// scale-to-zero" -> "min_replicas 0 is scale-to-zero").
func jsonNames(doc string, fields []jsonField) string {
	if doc == "" {
		return ""
	}
	names := map[string]string{}
	for _, f := range fields {
		names[f.goName] = f.name
	}
	return word.ReplaceAllStringFunc(doc, func(w string) string {
		if n, ok := names[w]; ok {
			return n
		}
		return w
	})
}
