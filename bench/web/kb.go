package main

import (
	"bytes"
	"context"
	"fmt"
	"math/rand/v2"
	"net/http"
	"net/url"
	"time"

	"golang.org/x/sync/errgroup"

	"github.com/helpdeskgw/helpdesk/tickets"
)

// Knowledge base articles: a topic and an aspect make each title, in
// Spanish (with its accents) and English.
var (
	kbTopics = [2][]string{
		{"factura", "contraseña", "envío", "devolución", "pedido", "tarjeta", "sesión", "dirección", "suscripción",
			"reembolso", "cuenta", "aplicación", "cupón", "garantía", "transferencia", "notificación"},
		{"invoice", "password", "shipping", "return", "order", "card", "login", "address", "subscription",
			"refund", "account", "app", "coupon", "warranty", "transfer", "notification"},
	}
	kbAspects = [2][]string{
		{"Cómo cambiar", "Problemas con", "Preguntas sobre", "Errores al usar", "Plazos de", "Cancelar", "Revisar",
			"Configurar", "Descargar", "Recuperar"},
		{"How to change", "Trouble with", "Questions about", "Errors using", "Deadlines for", "Cancelling", "Checking",
			"Setting up", "Downloading", "Recovering"},
	}
	// What customers search and type: without accents, plural, a word
	// being typed.
	kbSearches = [2][]string{
		{"facturas", "contrasena olvidada", "envios", "devolucion pedido", "tarjeta", "sesion", "reembolsos"},
		{"invoices", "password", "shipping return", "refunds", "login", "subscription"},
	}
	kbTyping = [2][]string{
		{"no puedo descarg", "problema con la contras", "quiero cancelar la suscr", "mi pedido no lleg"},
		{"cannot download the invo", "my password reset", "refund for my ord"},
	}
	kbLanguages = [2]string{"es", "en"}
)

// seedArticles writes n published articles through the store's import,
// spread over the departments and both languages; it returns their
// paths and titles.
func seedArticles(ctx context.Context, store *tickets.Store, departments []string, n int) ([]tickets.Article, error) {
	r := rand.New(rand.NewPCG(5, 6))
	var list []tickets.ArticleInput
	for i := range n {
		lang := i % 2
		topic := kbTopics[lang][r.IntN(len(kbTopics[lang]))]
		title := fmt.Sprintf("%s %s (%d)", kbAspects[lang][r.IntN(len(kbAspects[lang]))], topic, i)
		list = append(list, tickets.ArticleInput{
			Department: departments[i%len(departments)], Language: kbLanguages[lang], Title: title,
			Category: kbTopics[lang][i%4], Keywords: []string{topic, kbTopics[lang][r.IntN(len(kbTopics[lang]))]},
			Body:  "## " + title + "\n\n" + text(r, 1200) + "\n\n- " + text(r, 80) + "\n- " + text(r, 80) + "\n",
			State: tickets.ArticlePublished,
		})
	}
	for len(list) > 0 {
		chunk := list[:min(500, len(list))]
		if _, err := store.ImportArticles(ctx, "bench", chunk); err != nil {
			return nil, fmt.Errorf("seed articles: %w", err)
		}
		list = list[len(chunk):]
	}
	all, err := store.AllArticles(ctx)
	if err != nil {
		return nil, fmt.Errorf("seed articles: %w", err)
	}
	return all, nil
}

// kbSearchEndpoint searches the knowledge base as a visitor does from /kb.
func kbSearchEndpoint(base string) endpoint {
	return endpoint{name: "GET /kb?q=", request: func(r *rand.Rand) (*http.Request, func(*http.Response, []byte) error) {
		lang := r.IntN(2)
		q := kbSearches[lang][r.IntN(len(kbSearches[lang]))]
		req, _ := http.NewRequest(http.MethodGet, base+"/kb?"+url.Values{"q": {q}, "lang": {kbLanguages[lang]}}.Encode(), nil)
		req.Header.Set("X-Forwarded-For", visitorAddr(r))
		return req, func(resp *http.Response, body []byte) error {
			if resp.StatusCode != http.StatusOK || !bytes.Contains(body, []byte("<mark>")) {
				return fmt.Errorf("search %q: %s, %d bytes without a marked word", q, resp.Status, len(body))
			}
			return nil
		}
	}}
}

// kbSuggestEndpoint asks for the submit form's live suggestions of a
// subject being typed.
func kbSuggestEndpoint(base string) endpoint {
	return endpoint{name: "GET /kb/suggest", request: func(r *rand.Rand) (*http.Request, func(*http.Response, []byte) error) {
		lang := r.IntN(2)
		q := kbTyping[lang][r.IntN(len(kbTyping[lang]))]
		req, _ := http.NewRequest(http.MethodGet, base+"/kb/suggest?"+url.Values{"q": {q}, "lang": {kbLanguages[lang]}}.Encode(), nil)
		req.Header.Set("X-Forwarded-For", visitorAddr(r))
		return req, func(resp *http.Response, body []byte) error {
			if resp.StatusCode != http.StatusOK || !bytes.Contains(body, []byte(`"url":"/kb/`)) {
				return fmt.Errorf("suggest %q: %s %.200q", q, resp.Status, body)
			}
			return nil
		}
	}}
}

// kbArticleEndpoint opens a random article's page.
func kbArticleEndpoint(base string, articles []tickets.Article) endpoint {
	return endpoint{name: "GET /kb/{article}", request: func(r *rand.Rand) (*http.Request, func(*http.Response, []byte) error) {
		a := articles[r.IntN(len(articles))]
		req, _ := http.NewRequest(http.MethodGet, base+a.Path(), nil)
		req.Header.Set("X-Forwarded-For", visitorAddr(r))
		return req, func(resp *http.Response, body []byte) error {
			if resp.StatusCode != http.StatusOK || !bytes.Contains(body, []byte(a.Title)) {
				return fmt.Errorf("article %s: %s, %d bytes without its title", a.Path(), resp.Status, len(body))
			}
			return nil
		}
	}}
}

// pickedOneByOne is how many tickets pickArticles times one at a time.
const pickedOneByOne = 500

// pickArticles picks the articles of each ticket in sample, as their
// acknowledgements would have before their customers open them: the
// first pickedOneByOne one at a time, timed, the rest on conns goroutines.
func pickArticles(ctx context.Context, store *tickets.Store, sample []seedTicket, conns int) ([]time.Duration, error) {
	timed := sample[:min(pickedOneByOne, len(sample))]
	took := make([]time.Duration, len(timed))
	for i, t := range timed {
		start := time.Now()
		if _, err := store.ArticlesForTicket(ctx, t.id, 3); err != nil {
			return nil, fmt.Errorf("pick articles: %w", err)
		}
		took[i] = time.Since(start)
	}
	g, gctx := errgroup.WithContext(ctx)
	g.SetLimit(conns)
	for _, t := range sample[len(timed):] {
		g.Go(func() error {
			if _, err := store.ArticlesForTicket(gctx, t.id, 3); err != nil {
				return fmt.Errorf("pick articles: %w", err)
			}
			return nil
		})
	}
	return took, g.Wait()
}
