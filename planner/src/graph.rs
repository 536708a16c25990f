//! The dependency graph across every resource of a stack, whatever driver applies it.
//!
//! Edges point from a dependency to its dependent (`database/orders-db → service/checkout-api`),
//! so a topological order is an apply order. Orders are deterministic: among resources whose
//! dependencies are met, the smallest address goes first.

use crate::model::{EdgeVia, Kind, Stack};
use crate::source::Span;
use petgraph::graph::{DiGraph, NodeIndex};
use petgraph::visit::EdgeRef;
use std::cmp::Reverse;
// Address-keyed maps hash with foldhash: SipHash was a fifth of building a 10,000-node graph.
use foldhash::{HashMap, HashMapExt};
use std::collections::{BTreeSet, BinaryHeap};
use std::fmt::Write as _;

#[derive(Debug, Clone)]
pub struct Edge {
    pub via: EdgeVia,
    /// Where the reference is written, for cycle diagnostics.
    pub span: Option<Span>,
}

#[derive(Debug, Clone)]
pub struct Graph {
    /// Node weights are addresses (`kind/name`), sorted, so `NodeIndex` order is address order.
    pub graph: DiGraph<String, Edge>,
    index: HashMap<String, NodeIndex>,
    pub drivers: Vec<String>,
    pub kinds: Vec<Kind>,
}

impl Graph {
    /// Builds the graph of a stack's resources. References to missing resources are left out
    /// (validation reports them).
    pub fn from_stack(stack: &Stack) -> Graph {
        let mut order: Vec<usize> = (0..stack.resources.len()).collect();
        order.sort_by(|a, b| {
            stack.resources[*a]
                .address
                .cmp(&stack.resources[*b].address)
        });
        let mut g = Graph {
            graph: DiGraph::new(),
            index: HashMap::new(),
            drivers: Vec::new(),
            kinds: Vec::new(),
        };
        // Edges are found by address, without rendering each reference as text.
        let mut by_address: HashMap<&crate::model::Address, NodeIndex> =
            HashMap::with_capacity(order.len());
        g.index.reserve(order.len());
        for &i in &order {
            let r = &stack.resources[i];
            if by_address.contains_key(&r.address) {
                continue; // a duplicate address; reported by validation
            }
            let addr = r.address.key();
            let n = g.graph.add_node(addr.clone());
            g.index.insert(addr, n);
            by_address.insert(&r.address, n);
            g.drivers.push(stack.driver_for(r).unwrap_or_default());
            g.kinds.push(r.address.kind);
        }
        for r in &stack.resources {
            let Some(&to) = by_address.get(&r.address) else {
                continue;
            };
            for reference in &r.references {
                if let Some(&from) = by_address.get(&reference.target) {
                    g.graph.add_edge(
                        from,
                        to,
                        Edge {
                            via: reference.via.clone(),
                            span: Some(reference.span),
                        },
                    );
                }
            }
        }
        g
    }

    /// Builds a graph from addresses and their `depends_on` lists (a stored snapshot or plan).
    pub fn from_dependencies<'a, I>(nodes: I) -> Graph
    where
        I: IntoIterator<Item = (&'a str, Kind, &'a str, &'a [String])>,
    {
        let mut items: Vec<_> = nodes.into_iter().collect();
        items.sort_by(|a, b| a.0.cmp(b.0));
        let mut g = Graph {
            graph: DiGraph::new(),
            index: HashMap::new(),
            drivers: Vec::new(),
            kinds: Vec::new(),
        };
        for (addr, kind, driver, _) in &items {
            let n = g.graph.add_node(addr.to_string());
            g.index.insert(addr.to_string(), n);
            g.drivers.push(driver.to_string());
            g.kinds.push(*kind);
        }
        for (addr, _, _, deps) in &items {
            let to = g.index[*addr];
            for d in deps.iter() {
                if let Some(&from) = g.index.get(d) {
                    g.graph.add_edge(
                        from,
                        to,
                        Edge {
                            via: EdgeVia::DependsOn,
                            span: None,
                        },
                    );
                }
            }
        }
        g
    }

    pub fn len(&self) -> usize {
        self.graph.node_count()
    }

    pub fn is_empty(&self) -> bool {
        self.graph.node_count() == 0
    }

    pub fn edge_count(&self) -> usize {
        self.graph.edge_count()
    }

    pub fn node(&self, address: &str) -> Option<NodeIndex> {
        self.index.get(address).copied()
    }

    pub fn address(&self, n: NodeIndex) -> &str {
        &self.graph[n]
    }

    /// What `n` needs, sorted by address, one entry per distinct dependency.
    pub fn needs(&self, n: NodeIndex) -> Vec<(NodeIndex, &Edge)> {
        self.neighbours(n, petgraph::Direction::Incoming)
    }

    /// What needs `n`, sorted by address.
    pub fn needed_by(&self, n: NodeIndex) -> Vec<(NodeIndex, &Edge)> {
        self.neighbours(n, petgraph::Direction::Outgoing)
    }

    fn neighbours(&self, n: NodeIndex, dir: petgraph::Direction) -> Vec<(NodeIndex, &Edge)> {
        let mut v: Vec<(NodeIndex, &Edge)> = self
            .graph
            .edges_directed(n, dir)
            .map(|e| {
                (
                    if dir == petgraph::Direction::Incoming {
                        e.source()
                    } else {
                        e.target()
                    },
                    e.weight(),
                )
            })
            .collect();
        v.sort_by(|a, b| a.0.cmp(&b.0).then_with(|| a.1.via.cmp(&b.1.via)));
        v.dedup_by_key(|x| x.0);
        v
    }

    /// Every cycle's strongly connected component, as one concrete cycle path each:
    /// `[a, b, c]` means a needs b, b needs c, c needs a. Paths start at their smallest address.
    pub fn cycles(&self) -> Vec<Vec<(NodeIndex, Edge)>> {
        let mut out = Vec::new();
        for mut scc in petgraph::algo::tarjan_scc(&self.graph) {
            scc.sort();
            let start = scc[0];
            let is_cycle =
                scc.len() > 1 || self.graph.edges_connecting(start, start).next().is_some();
            if !is_cycle {
                continue;
            }
            let members: BTreeSet<NodeIndex> = scc.iter().copied().collect();
            if let Some(path) = self.cycle_path(start, &members) {
                out.push(path);
            }
        }
        out.sort_by_key(|p| p[0].0);
        out
    }

    /// Depth-first search along "needs" edges inside one component, back to `start`.
    fn cycle_path(
        &self,
        start: NodeIndex,
        members: &BTreeSet<NodeIndex>,
    ) -> Option<Vec<(NodeIndex, Edge)>> {
        let mut stack: Vec<(NodeIndex, Vec<(NodeIndex, Edge)>)> = Vec::new();
        let mut visited = BTreeSet::new();
        let needs_in = |n: NodeIndex| -> Vec<(NodeIndex, Edge)> {
            let mut v: Vec<(NodeIndex, Edge)> = self
                .graph
                .edges_directed(n, petgraph::Direction::Incoming)
                .filter(|e| members.contains(&e.source()))
                .map(|e| (e.source(), e.weight().clone()))
                .collect();
            v.sort_by_key(|x| x.0);
            v
        };
        stack.push((start, Vec::new()));
        while let Some((n, path)) = stack.pop() {
            for (dep, edge) in needs_in(n).into_iter().rev() {
                let mut p = path.clone();
                p.push((n, edge));
                if dep == start {
                    return Some(p);
                }
                if visited.insert(dep) {
                    stack.push((dep, p));
                }
            }
        }
        None
    }

    /// Apply order: dependencies before dependents; ties broken by address. Nodes on a cycle
    /// (only possible in an invalid stack) come last, by address.
    pub fn topo_order(&self) -> Vec<NodeIndex> {
        let edges: Vec<(u32, u32)> = self
            .graph
            .edge_indices()
            .filter_map(|e| self.graph.edge_endpoints(e))
            .map(|(from, to)| (from.index() as u32, to.index() as u32))
            .collect();
        order_by_edges(self.len(), &edges)
            .into_iter()
            .map(NodeIndex::new)
            .collect()
    }

    /// Everything `n` needs, transitively (not including `n`).
    pub fn all_needs(&self, n: NodeIndex) -> BTreeSet<NodeIndex> {
        self.reach(n, true)
    }

    /// Everything that needs `n`, transitively: its blast radius.
    pub fn all_needed_by(&self, n: NodeIndex) -> BTreeSet<NodeIndex> {
        self.reach(n, false)
    }

    fn reach(&self, n: NodeIndex, needs: bool) -> BTreeSet<NodeIndex> {
        let mut seen = BTreeSet::new();
        let mut todo = vec![n];
        while let Some(x) = todo.pop() {
            let next = if needs {
                self.needs(x)
            } else {
                self.needed_by(x)
            };
            for (m, _) in next {
                if seen.insert(m) {
                    todo.push(m);
                }
            }
        }
        seen.remove(&n);
        seen
    }

    /// The longest chain of dependencies, counted in resources.
    pub fn depth(&self) -> usize {
        let mut depth = vec![0usize; self.len()];
        for n in self.topo_order() {
            let d = self
                .needs(n)
                .iter()
                .map(|(m, _)| depth[m.index()])
                .max()
                .map_or(1, |d| d + 1);
            depth[n.index()] = d;
        }
        depth.into_iter().max().unwrap_or(0)
    }

    /// A `cargo tree`-style rendering: every resource nothing depends on, with what it needs
    /// nested below it. Subtrees already shown are marked `(*)`.
    pub fn render_tree(&self) -> String {
        let mut out = String::new();
        let mut shown = BTreeSet::new();
        let roots: Vec<NodeIndex> = self
            .graph
            .node_indices()
            .filter(|n| self.needed_by(*n).is_empty())
            .collect();
        let _ = writeln!(
            out,
            "{} resources, {} edges, longest chain {}",
            self.len(),
            self.edge_count(),
            self.depth()
        );
        for r in &roots {
            let _ = writeln!(out, "{}{}", self.address(*r), self.driver_suffix(*r));
            self.tree_children(*r, "", &mut shown, &mut out, true);
        }
        // Resources only reachable through a cycle have no root; show them so nothing is hidden.
        for n in self.graph.node_indices() {
            if !shown.contains(&n) && !roots.contains(&n) {
                let _ = writeln!(out, "{}{}", self.address(n), self.driver_suffix(n));
                self.tree_children(n, "", &mut shown, &mut out, true);
            }
        }
        out
    }

    fn driver_suffix(&self, n: NodeIndex) -> String {
        match self.drivers.get(n.index()) {
            Some(d) if !d.is_empty() => format!(" [{d}]"),
            _ => String::new(),
        }
    }

    fn tree_children(
        &self,
        n: NodeIndex,
        prefix: &str,
        shown: &mut BTreeSet<NodeIndex>,
        out: &mut String,
        needs: bool,
    ) {
        let first_visit = shown.insert(n);
        if !first_visit {
            return;
        }
        let children = if needs {
            self.needs(n)
        } else {
            self.needed_by(n)
        };
        let count = children.len();
        for (i, (m, edge)) in children.into_iter().enumerate() {
            let last = i + 1 == count;
            let branch = if last { "└── " } else { "├── " };
            let again = if shown.contains(&m)
                && !(if needs {
                    self.needs(m)
                } else {
                    self.needed_by(m)
                })
                .is_empty()
            {
                " (*)"
            } else {
                ""
            };
            let _ = writeln!(
                out,
                "{prefix}{branch}{} ({}){again}",
                self.address(m),
                edge.via
            );
            let child_prefix = format!("{prefix}{}", if last { "    " } else { "│   " });
            if again.is_empty() {
                self.tree_children(m, &child_prefix, shown, out, needs);
            }
        }
    }

    /// What `n` needs and what needs it, transitively, as two trees.
    pub fn render_focus(&self, n: NodeIndex) -> String {
        let mut out = String::new();
        let needs = self.all_needs(n);
        let needed_by = self.all_needed_by(n);
        let _ = writeln!(out, "{}{}", self.address(n), self.driver_suffix(n));
        let _ = writeln!(
            out,
            "\nneeds ({} resource{}):",
            needs.len(),
            if needs.len() == 1 { "" } else { "s" }
        );
        if needs.is_empty() {
            let _ = writeln!(out, "    nothing");
        } else {
            self.tree_children(n, "    ", &mut BTreeSet::new(), &mut out, true);
        }
        let _ = writeln!(
            out,
            "\nneeded by (blast radius: {} resource{}):",
            needed_by.len(),
            if needed_by.len() == 1 { "" } else { "s" }
        );
        if needed_by.is_empty() {
            let _ = writeln!(out, "    nothing");
        } else {
            self.tree_children(n, "    ", &mut BTreeSet::new(), &mut out, false);
        }
        out
    }

    /// Graphviz DOT, one cluster per driver, edges labelled with why they exist. With a focus,
    /// only the focused resource, what it needs and what needs it.
    pub fn render_dot(&self, focus: Option<NodeIndex>) -> String {
        let keep: Option<BTreeSet<NodeIndex>> = focus.map(|n| {
            let mut s = self.all_needs(n);
            s.extend(self.all_needed_by(n));
            s.insert(n);
            s
        });
        let included = |n: NodeIndex| keep.as_ref().is_none_or(|k| k.contains(&n));
        let mut out = String::from(
            "digraph platform {\n    rankdir=LR;\n    node [shape=box, style=\"rounded,filled\", fontname=\"Helvetica\"];\n",
        );
        let mut drivers: Vec<&str> = self.drivers.iter().map(String::as_str).collect();
        drivers.sort();
        drivers.dedup();
        for (ci, driver) in drivers.iter().enumerate() {
            let _ = writeln!(
                out,
                "    subgraph cluster_{ci} {{\n        label=\"{}\";",
                escape(if driver.is_empty() {
                    "no driver"
                } else {
                    driver
                })
            );
            for n in self
                .graph
                .node_indices()
                .filter(|n| self.drivers[n.index()] == *driver && included(*n))
            {
                let extra = if Some(n) == focus { ", penwidth=3" } else { "" };
                let _ = writeln!(
                    out,
                    "        \"{}\" [fillcolor=\"{}\"{extra}];",
                    escape(self.address(n)),
                    kind_colour(self.kinds[n.index()])
                );
            }
            out.push_str("    }\n");
        }
        for e in self.graph.edge_indices() {
            let (from, to) = self.graph.edge_endpoints(e).expect("edge exists");
            if included(from) && included(to) {
                // Drawn dependent → dependency, reading "needs".
                let _ = writeln!(
                    out,
                    "    \"{}\" -> \"{}\" [label=\"{}\"];",
                    escape(self.address(to)),
                    escape(self.address(from)),
                    escape(&self.graph[e].via.to_string())
                );
            }
        }
        out.push_str("}\n");
        out
    }
}

fn escape(s: &str) -> String {
    s.replace('\\', "\\\\").replace('"', "\\\"")
}

fn kind_colour(kind: Kind) -> &'static str {
    match kind {
        Kind::Service => "#cfe2ff",
        Kind::Database => "#ffe5b4",
        Kind::Bucket => "#e2f0d9",
        Kind::Topic => "#f8d7da",
        Kind::Pipeline => "#e0d4f5",
        Kind::GpuPool => "#fff3b0",
        Kind::AiEndpoint => "#d1f2eb",
        Kind::LlmQuota => "#e9ecef",
        Kind::Job => "#d6eaf8",
    }
}

/// Nodes `0..n` in dependency order, given edges need → dependent: of the ready nodes, the
/// lowest first; nodes left on a cycle come last, lowest first. Each edge is counted once, so
/// parallel edges need no special care. Shared by [`Graph::topo_order`] and the plan, which
/// orders a snapshot's positions without building a graph of addresses.
pub(crate) fn order_by_edges(n: usize, edges: &[(u32, u32)]) -> Vec<usize> {
    // Dependents laid out by need (compressed rows).
    let mut indegree = vec![0u32; n];
    let mut start = vec![0u32; n + 1];
    for &(from, to) in edges {
        indegree[to as usize] += 1;
        start[from as usize + 1] += 1;
    }
    for i in 0..n {
        start[i + 1] += start[i];
    }
    let mut fill = start.clone();
    let mut dependents = vec![0u32; edges.len()];
    for &(from, to) in edges {
        dependents[fill[from as usize] as usize] = to;
        fill[from as usize] += 1;
    }
    let mut ready: BinaryHeap<Reverse<u32>> = (0..n as u32)
        .filter(|&i| indegree[i as usize] == 0)
        .map(Reverse)
        .collect();
    let mut order = Vec::with_capacity(n);
    let mut done = vec![false; n];
    while let Some(Reverse(i)) = ready.pop() {
        order.push(i as usize);
        done[i as usize] = true;
        for &m in &dependents[start[i as usize] as usize..start[i as usize + 1] as usize] {
            indegree[m as usize] -= 1;
            if indegree[m as usize] == 0 {
                ready.push(Reverse(m));
            }
        }
    }
    order.extend((0..n).filter(|&i| !done[i]));
    order
}
