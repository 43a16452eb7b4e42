//go:build ignore

// Command generate writes the example corpus: four files of invented
// almanac entries about a fictional coastal valley. Every sentence comes
// from the small grammar below (written for this repository and in the
// public domain), sampled with a fixed seed, so the corpus is reproducible:
//
//	cd examples/ngram/corpus && go run generate.go
//
// Entries are separated by blank lines. A few entries are deliberately
// short, and a few notices are repeated with different punctuation and
// case, so that the clean step has something to drop and deduplicate.
package main

import (
	"fmt"
	"log"
	"math/rand/v2"
	"os"
	"strings"
)

// season is one output file.
type season struct {
	file    string
	title   string
	months  []string
	weather []string
	entries int
}

var seasons = []season{
	{"spring.txt", "Spring.", []string{"March", "April", "May"},
		[]string{"a soft rain fell", "the wind turned warm", "mist lay on the fields", "the river rose quickly", "the sky cleared by noon"}, 60},
	{"summer.txt", "Summer.", []string{"June", "July", "August"},
		[]string{"the heat pressed on the roofs", "a dry wind came off the hills", "the sea was flat and bright", "thunder rolled over the marsh", "the evenings stayed light"}, 60},
	{"autumn.txt", "Autumn.", []string{"September", "October", "November"},
		[]string{"the leaves came down in heaps", "a cold fog hid the harbour", "the first frost silvered the grass", "a gale pulled at the shutters", "the rain did not stop"}, 60},
	{"winter.txt", "Winter.", []string{"December", "January", "February"},
		[]string{"snow drifted against the doors", "the pond froze hard", "a bitter wind blew from the north", "ice hung from the gutters", "the days were short and grey"}, 60},
}

var (
	people = []string{
		"the miller", "the old ferryman", "my grandmother", "a young shepherd", "the schoolteacher",
		"Tomas", "Elsa", "the baker's daughter", "two fishermen", "the children",
		"the priest", "a stranger from the city", "the blacksmith", "my brother", "the widow Hale",
		"the postman", "a pedlar with a grey mule", "the innkeeper", "the doctor's wife", "old Martin",
		"the twins", "the lighthouse keeper", "a girl called Wren", "the carpenter", "the mayor",
		"three sailors", "the cooper", "our neighbour", "the shepherd's dog", "a travelling fiddler",
	}
	deeds = []string{
		"carried", "mended", "painted", "sold", "counted", "buried", "found", "lost", "watched",
		"repaired", "gathered", "baked", "planted", "read aloud", "traded", "cleaned", "stacked",
		"borrowed", "carved", "weighed", "returned", "wrapped", "tied up", "polished", "measured",
	}
	things = []string{
		"a basket of apples", "the broken gate", "three brown hens", "an old map of the coast",
		"the church bell", "a letter from the city", "a sack of barley", "the long boat",
		"a jar of honey", "the school roof", "a pair of boots", "the mill wheel", "a crate of herring",
		"the lantern", "a bundle of firewood", "the orchard fence", "a copper kettle", "the ledger",
		"a wooden chest", "the nets", "a loaf of rye bread", "the harbour chain", "a blue coat",
		"the well bucket", "a box of nails", "the signpost", "a cart of turnips", "the clock",
		"a bolt of linen", "the beehives", "a bag of salt", "the bridge rail", "a fiddle with two strings",
	}
	places = []string{
		"near the harbour", "beside the mill", "on the north road", "under the chestnut trees",
		"at the edge of the marsh", "behind the inn", "in the market square", "by the old well",
		"on the sea wall", "inside the church", "along the river path", "at the crossroads",
		"in the upper meadow", "below the lighthouse", "outside the school", "on the bridge",
		"in the orchard", "at the ferry landing", "up on the ridge", "down by the boat sheds",
	}
	times = []string{
		"early in the morning", "before the first frost", "after the market closed", "late that evening",
		"at dawn", "just before supper", "while the bells were ringing", "on the way home",
		"in the middle of the night", "soon after breakfast", "when the tide went out", "at noon",
		"the next day", "a week later", "before anyone was awake",
	}
	manners = []string{
		"slowly", "quietly", "carefully", "without a word", "in a great hurry", "with some difficulty",
		"for the last time", "as usual", "twice", "with great care", "cheerfully", "reluctantly",
	}
	moods = []string{
		"glad", "tired", "worried", "surprised", "cross", "hopeful", "proud", "uneasy", "amused", "sorry",
	}
	sayings = []string{
		"a slow boat still reaches the shore", "the tide waits for nobody",
		"bread shared is bread doubled", "a mended net catches more than a new one left on the hook",
		"you cannot plough a field by turning it over in your mind", "the loudest gull eats last",
		"a cold hearth makes a short story", "what the river takes the river returns",
	}
	rumours = []string{
		"the mill would be sold", "a ship had been seen off the point", "the bridge was unsafe",
		"the school would close", "wolves had come down from the hills", "the well had gone sour",
		"the mayor meant to leave", "there would be a fair in the spring",
	}
	wants = []string{
		"go out in the boat", "climb the ridge", "sweep the yard", "wait any longer", "sell the hens",
		"speak to the mayor", "cross the marsh alone", "open the letter", "mend the roof",
	}
)

// notices are repeated, with varying punctuation and case, across files.
var notices = []string{
	"NOTICE: the ferry will not run on Sundays until further notice.",
	"Notice - the ferry will not run on Sundays, until further notice!",
	"notice the ferry will not run on sundays until further notice",
	"Reminder: the market opens at seven, and closes when the fish are gone.",
	"REMINDER: The market opens at seven and closes when the fish are gone.",
}

// shorts are entries too short to be documents.
var shorts = []string{"Nothing to report.", "Rain.", "No entry.", "Same as yesterday.", "Quiet."}

// gen samples from the grammar.
type gen struct{ r *rand.Rand }

// pick returns an element of xs, favouring early ones (roughly Zipfian), so
// the vocabulary has a long tail as real text does.
func (g gen) pick(xs []string) string {
	w := 0.0
	for i := range xs {
		w += 1 / float64(i+1)
	}
	x := g.r.Float64() * w
	for i, s := range xs {
		x -= 1 / float64(i+1)
		if x <= 0 {
			return s
		}
	}
	return xs[len(xs)-1]
}

func capitalize(s string) string {
	if s == "" {
		return s
	}
	return strings.ToUpper(s[:1]) + s[1:]
}

// sentence returns one sentence of an entry.
func (g gen) sentence(s season) string {
	switch g.r.IntN(12) {
	case 0, 1:
		return fmt.Sprintf("%s %s %s %s.", capitalize(g.pick(people)), g.pick(deeds), g.pick(things), g.pick(places))
	case 2:
		return fmt.Sprintf("%s, %s %s %s %s.", capitalize(g.pick(times)), g.pick(people), g.pick(deeds), g.pick(things), g.pick(manners))
	case 3:
		return fmt.Sprintf("%s, and %s %s %s %s.", capitalize(g.pick(s.weather)), g.pick(people), g.pick(deeds), g.pick(things), g.pick(places))
	case 4:
		return fmt.Sprintf("%s said that %s had %s %s %s.", capitalize(g.pick(people)), g.pick(people), g.pick(deeds), g.pick(things), g.pick(times))
	case 5:
		return fmt.Sprintf("%s was %s, because %s had %s %s.", capitalize(g.pick(people)), g.pick(moods), g.pick(people), g.pick(deeds), g.pick(things))
	case 6:
		return fmt.Sprintf("\"%s,\" said %s, %s.", capitalize(g.pick(sayings)), g.pick(people), g.pick(places))
	case 7:
		return fmt.Sprintf("There was talk %s that %s.", g.pick(places), g.pick(rumours))
	case 8:
		return fmt.Sprintf("%s didn't want to %s, but %s wouldn't hear of it.", capitalize(g.pick(people)), g.pick(wants), g.pick(people))
	case 9:
		return fmt.Sprintf("Who %s %s %s?", g.pick(deeds), g.pick(things), g.pick(places))
	case 10:
		return fmt.Sprintf("%s; %s %s %s.", capitalize(g.pick(s.weather)), g.pick(people), g.pick(deeds), g.pick(manners))
	default:
		return fmt.Sprintf("%s %s %s %s, and then %s %s.", capitalize(g.pick(people)), g.pick(deeds), g.pick(things), g.pick(times), g.pick(deeds), g.pick(things))
	}
}

// entry returns one dated entry of 3 to 7 sentences.
func (g gen) entry(s season) string {
	parts := []string{fmt.Sprintf("On the %s of %s %s.", ordinal(1+g.r.IntN(28)), s.months[g.r.IntN(len(s.months))], g.pick(s.weather))}
	for range 2 + g.r.IntN(5) {
		parts = append(parts, g.sentence(s))
	}
	return strings.Join(parts, " ")
}

// ordinal spells a day of the month as 1st, 2nd, 3rd, 4th, ...
func ordinal(n int) string {
	suffix := "th"
	switch {
	case n%100/10 == 1:
	case n%10 == 1:
		suffix = "st"
	case n%10 == 2:
		suffix = "nd"
	case n%10 == 3:
		suffix = "rd"
	}
	return fmt.Sprint(n, suffix)
}

func (g gen) file(s season) string {
	docs := []string{s.title}
	for i := range s.entries {
		docs = append(docs, g.entry(s))
		switch {
		case i%17 == 5:
			docs = append(docs, shorts[g.r.IntN(len(shorts))])
		case i%23 == 11:
			docs = append(docs, notices[g.r.IntN(len(notices))])
		}
	}
	return strings.Join(docs, "\n\n") + "\n"
}

func main() {
	g := gen{rand.New(rand.NewPCG(2024, 11))}
	for _, s := range seasons {
		if err := os.WriteFile(s.file, []byte(g.file(s)), 0o644); err != nil {
			log.Fatal(err)
		}
	}
}
